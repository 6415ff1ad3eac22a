"""The CLIP tier, prompt concepts and the vector index, with a real open_clip model. No checkpoint is
available offline, so the model has random weights: these tests cover the mechanics (batching,
identity, refusal to mix models, thresholds, the exact/approximate switch), not semantic quality."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import guardrail
from guardrail.screening.embeddings import ImageEmbedder
from guardrail.screening.refsets import ReferenceSet, ReferenceSetError
from guardrail.screening.screen import Query, Thresholds, match
from tests.screening.test_screening import OTHERS, PROTECTED, photo, png

CLIP_ONLY = Thresholds(max_distance=None, min_inliers=None, min_similarity=0.999)


@pytest.fixture(scope="module")
def embedder() -> ImageEmbedder:
    return ImageEmbedder("ViT-B-32", random_weights=True, batch_size=2)


@pytest.fixture
def refset(tmp_path: Path, embedder: ImageEmbedder) -> ReferenceSet:
    refs = ReferenceSet.create(tmp_path / "artworks")
    refs.add(((name, name, png(photo(name))) for name in PROTECTED), embedder=embedder)
    return ReferenceSet.open(tmp_path / "artworks")


def test_embeddings_are_batched_normalised_and_recorded_with_the_model(
    refset: ReferenceSet, embedder: ImageEmbedder
) -> None:
    assert refset.embedding == embedder.identity == "open_clip:ViT-B-32@random-weights-seed0"
    assert refset.embeddings is not None and refset.embeddings.shape == (3, 512)
    assert np.allclose(np.linalg.norm(refset.embeddings, axis=1), 1, atol=1e-5)
    one_by_one = np.vstack([embedder.embed_images([photo(name)]) for name in PROTECTED])
    assert np.allclose(one_by_one, refset.embeddings, atol=1e-4)  # batches of 2 give the same vectors
    # the same random model in another process: seeded, so its embeddings agree with the stored ones
    again = ImageEmbedder("ViT-B-32", random_weights=True)
    assert np.allclose(again.embed_images([photo("coffee")])[0], refset.embeddings[1], atol=1e-4)


def test_the_clip_tier_matches_by_embedding(refset: ReferenceSet, embedder: ImageEmbedder) -> None:
    for name in PROTECTED:
        query = Query(photo(name), embedder.embed_images([photo(name)])[0])
        [found] = match(query, refset, CLIP_ONLY)
        assert (found.label, found.method) == (name, "clip") and found.score >= 0.999
    for name in OTHERS:
        assert match(Query(photo(name), embedder.embed_images([photo(name)])[0]), refset, CLIP_ONLY) == []
    without_vector = Query(photo("coffee"))  # no embedding for the query: the tier is skipped
    assert match(without_vector, refset, CLIP_ONLY) == []


def test_embeddings_of_two_models_are_never_mixed(refset: ReferenceSet, tmp_path: Path, sqlite_url: str) -> None:
    other = ImageEmbedder("ViT-B-16", random_weights=True)  # not loaded: the identity is enough to refuse
    with pytest.raises(ReferenceSetError, match=r"holds embeddings of open_clip:ViT-B-32@.*not open_clip:ViT-B-16"):
        refset.add([("rocket", "rocket", png(photo("rocket")))], embedder=other)
    with pytest.raises(ReferenceSetError, match=r"configure that model under screening\.embedding"):
        refset.add([("rocket", "rocket", png(photo("rocket")))])
    assert len(ReferenceSet.open(refset.folder).entries) == 3
    plain = ReferenceSet.create(tmp_path / "plain")
    plain.add([("moon", "moon", png(photo("moon")))])
    with pytest.raises(ReferenceSetError, match="built without embeddings"):
        plain.add([("rocket", "rocket", png(photo("rocket")))], embedder=other)
    with pytest.raises(ReferenceSetError, match="rebuild the set with it"):
        guardrail.Guard(policy=guardrail.parse_policy("name: p\n"), database=sqlite_url,
                        reference_sets={"artworks": refset}, embedder=other)  # fmt: skip


def test_a_guard_screens_outputs_with_the_clip_tier(refset: ReferenceSet, embedder, sqlite_url: str) -> None:
    policy = guardrail.parse_policy(
        "name: p\nprivacy: {prompts: redacted}\nscreening:\n  sets:\n"
        "    artworks: {max_distance: null, min_inliers: null, min_similarity: 0.999, action: flag}\n"
    )
    with guardrail.Guard(
        policy=policy, database=sqlite_url, reference_sets={"artworks": refset}, embedder=embedder
    ) as g:
        out = g.wrap(lambda prompt: [photo("chelsea"), photo("rocket")])("two images")
    assert [[m.method for m in found] for found in out.governance.matches] == [["clip"], []]
    assert out.governance.decision.flagged


CONCEPTS = """\
name: concepts
privacy: {prompts: redacted}
screening:
  concepts:
    - id: no-mascot
      concepts: ["a famous cartoon mouse", "the studio's mascot"]
      min_similarity: 0.9999
      message: prompts about protected characters are not allowed
"""


def test_prompts_are_denied_by_meaning(embedder: ImageEmbedder, sqlite_url: str) -> None:
    calls = []
    policy = guardrail.parse_policy(CONCEPTS)
    with guardrail.Guard(policy=policy, database=sqlite_url, embedder=embedder) as guard:
        generate = guard.wrap(lambda prompt: calls.append(prompt) or [Image.new("RGB", (8, 8))])
        with pytest.raises(guardrail.PolicyViolation) as info:
            generate("The studio's mascot")  # same meaning; with random weights, only the same text is that close
        assert generate("a bowl of fruit").governance.allowed
    assert calls == ["a bowl of fruit"]
    [fired] = info.value.decision.fired
    assert fired.id == "no-mascot" and fired.message == "prompts about protected characters are not allowed"
    assert fired.detail == 'prompt 0 ~ "the studio\'s mascot": similarity 1.000 >= 0.9999'
    with pytest.raises(guardrail.ConfigError, match="concept rules need an embedding model"):
        guardrail.Guard(policy=policy, database=sqlite_url)


def test_no_checkpoint_means_no_clip_tier(tmp_path: Path, caplog) -> None:
    from guardrail.config import load_config
    from guardrail.screening.embeddings import embedder_from_config

    with pytest.raises(guardrail.ConfigError, match="has no checkpoint"):
        ImageEmbedder("ViT-B-32")
    with pytest.raises(guardrail.ConfigError, match=r"missing\.pt: embedding checkpoint not found"):
        ImageEmbedder("ViT-B-32", tmp_path / "missing.pt")
    config = tmp_path / "guardrail.yaml"
    config.write_text("screening:\n  embedding: {model: ViT-B-32}\n")
    settings = load_config(config)
    with caplog.at_level(logging.WARNING, logger="guardrail.screening"):
        assert embedder_from_config(settings.screening.embedding, settings.path) is None
    assert "the CLIP tier is off" in caplog.text
    config.write_text("screening:\n  embedding: {model: ViT-B-32, random_weights: true}\n")
    settings = load_config(config)
    embedder = embedder_from_config(settings.screening.embedding, settings.path)
    assert embedder is not None and embedder.identity.endswith("@random-weights-seed0")


def test_the_embedding_device_is_checked(tmp_path: Path) -> None:
    import torch

    from guardrail.config import load_config

    config = tmp_path / "guardrail.yaml"
    config.write_text("screening:\n  embedding: {model: ViT-B-32, random_weights: true, device: gpu}\n")
    with pytest.raises(guardrail.ConfigError, match=r"guardrail\.yaml.*screening\.embedding\.device"):
        load_config(config)
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: 'cuda' is valid here")
    on_cuda = ImageEmbedder("ViT-B-32", random_weights=True, device="cuda:0")
    with pytest.raises(guardrail.ConfigError, match=r"embedding device 'cuda:0': .* sees no CUDA device"):
        on_cuda.embed_images([photo("coffee")])


class VectorSet:
    def __init__(self, folder: Path, embeddings: np.ndarray) -> None:
        self.folder, self.embeddings = folder, embeddings


def test_large_sets_switch_to_an_approximate_index(tmp_path: Path, monkeypatch) -> None:
    from guardrail.screening import vectors

    rng = np.random.default_rng(0)
    data = rng.standard_normal((6000, 64)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    query = data[1234] + 0.01 * rng.standard_normal(64).astype(np.float32)
    small = vectors.index_for(VectorSet(tmp_path, data))
    assert isinstance(small, vectors.ExactIndex) and small.search(query, 3)[0][0] == 1234
    monkeypatch.setattr(vectors, "ANN_MIN", 5000)
    large = vectors.index_for(VectorSet(tmp_path, data))
    assert isinstance(large, vectors.ApproximateIndex)
    indices, similarity = large.search(query, 3)
    assert indices[0] == 1234 and similarity[0] > 0.95 and list(similarity) == sorted(similarity, reverse=True)
    [saved] = tmp_path.glob("ann-*.faiss")
    reloaded = vectors.index_for(VectorSet(tmp_path, data))  # another process would load the saved index
    assert isinstance(reloaded, vectors.ApproximateIndex) and reloaded.search(query, 1)[0][0] == 1234
    assert [p.name for p in tmp_path.glob("ann-*.faiss")] == [saved.name]


def test_refs_cli_embeds_with_the_configured_model(tmp_path: Path, capsys) -> None:
    import json

    from tests.cli.test_cli import run

    config = tmp_path / "guardrail.yaml"
    config.write_text("screening:\n  embedding: {model: ViT-B-32, random_weights: true}\n")
    photo("coffee").save(tmp_path / "coffee.png")
    root = str(tmp_path / "sets")
    code, out, _ = run(capsys, "refs", "add", "art", str(tmp_path / "coffee.png"), "--root", root, "-c", str(config))
    assert code == 0 and "open_clip:ViT-B-32@random-weights-seed0" in " ".join(out.split())
    [listed] = map(json.loads, run(capsys, "refs", "list", "--root", root, "--json")[1].splitlines())
    assert listed["embedding"] == "open_clip:ViT-B-32@random-weights-seed0"
    code, out, _ = run(capsys, "refs", "match", str(tmp_path / "coffee.png"), "--root", root, "-c", str(config),
                       "--max-distance", "0", "--min-inliers", "0", "--json")  # fmt: skip
    assert code == 1 and [m["method"] for m in json.loads(out)["matches"]] == ["phash"]
    code, _, err = run(capsys, "refs", "add", "art", str(tmp_path / "coffee.png"), "--root", root,
                       "-c", str(tmp_path / "none.yaml"))  # fmt: skip
    assert code == 2 and "holds embeddings of open_clip:ViT-B-32" in " ".join(err.split())
