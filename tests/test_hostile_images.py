"""Hostile image files at every entry point that decodes them: guardrail's own error, naming the file,
exit 2 in the CLI, nothing written, in bounded time and memory."""

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

import guardrail
from tests.cli.test_cli import run
from tests.screening.test_screening import photo


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header claims a huge image (its pixels are never there)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def valid_png() -> bytes:
    buffer = io.BytesIO()
    photo("coffee").save(buffer, "PNG")
    return buffer.getvalue()


HOSTILE = {
    "empty.png": (b"", "the file is empty"),
    "notes.png": (b"just some text, not an image\n" * 10, "not an image guardrail can read"),
    "truncated.png": (valid_png()[:5000], "cannot be decoded"),
    "corrupt.png": (valid_png()[:200] + bytes(range(256)) * 40, "cannot be decoded"),
    "bomb.png": (bomb_png(), "pixel"),
    "pil-bomb.png": (bomb_png(100_000, 100_000), "pixel"),  # past PIL's own limit too
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_open_image_raises_guardrails_own_error(tmp_path: Path, name: str) -> None:
    data, message = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(guardrail.InputError, match=message) as info:
        guardrail.open_image(path)
    assert str(path) in str(info.value)
    with pytest.raises(guardrail.InputError):
        guardrail.open_image(data)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_refs_add_refuses_a_bad_file_and_writes_nothing(tmp_path: Path, capsys, name: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (64, 64), "red").save(folder / "good.png")
    (folder / name).write_bytes(HOSTILE[name][0])
    root = tmp_path / "sets"
    code, _, err = run(capsys, "refs", "add", "fresh", str(folder), "--root", str(root))
    assert code == 2 and name in err and "Traceback" not in err
    assert not (root / "fresh").exists()  # no empty set left behind for a new name
    # an existing set is left exactly as it was
    code, _, _ = run(capsys, "refs", "add", "kept", str(folder / "good.png"), "--root", str(root))
    before = {p.name: p.read_bytes() for p in (root / "kept").iterdir()}
    code, _, err = run(capsys, "refs", "add", "kept", str(folder), "--root", str(root))
    assert code == 2 and {p.name: p.read_bytes() for p in (root / "kept").iterdir()} == before


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_refs_match_and_verify_refuse_bad_files_with_exit_2(tmp_path: Path, capsys, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(HOSTILE[name][0])
    root = tmp_path / "sets"
    run(capsys, "refs", "add", "s", str(_good(tmp_path)), "--root", str(root))
    code, _, err = run(capsys, "refs", "match", str(path), "--root", str(root))
    assert code == 2 and name in err and "Traceback" not in err
    code, _, err = run(capsys, "verify", str(path))
    if name in ("truncated.png", "corrupt.png"):  # a readable PNG header: its manifest (none) is read
        assert code == 1
    else:
        assert code == 2 and name in err


def _good(tmp_path: Path) -> Path:
    path = tmp_path / "good.png"
    Image.new("RGB", (64, 64), "red").save(path)
    return path


def test_an_oversized_input_image_is_refused_and_audited(sqlite_url: str) -> None:
    from guardrail.images import MAX_IMAGE_PIXELS
    from guardrail.pipeline.inputs import CheckInputs
    from tests.conftest import events

    policy = guardrail.parse_policy("name: p\nprivacy: {prompts: redacted}\n")
    calls = []
    with guardrail.Guard(policy=policy, database=sqlite_url) as guard:
        # a smaller limit keeps the test's memory small; the stage is the Guard's own
        guard.pipeline.stages = tuple(
            CheckInputs(max_pixels=64 * 64) if s.name == "check_inputs" else s for s in guard.pipeline.stages
        )
        img2img = guard.wrap(lambda prompt, image=None: calls.append(prompt) or [image])
        with pytest.raises(guardrail.ImageTooLarge, match="input image 0 \\(image\\): 65x64 is over"):
            img2img("x", image=Image.new("RGB", (65, 64)))
        assert img2img("x", image=Image.new("RGB", (64, 64))).governance.allowed
        outcome = next(e for e in events(guard) if e["kind"] == "outcome")
    assert calls == ["x"] and outcome["status"] == "error" and "ImageTooLarge" in outcome["error"]
    assert CheckInputs().max_pixels == MAX_IMAGE_PIXELS
