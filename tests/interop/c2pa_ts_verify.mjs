// Validates C2PA manifests with @trustnxt/c2pa-ts and prints one JSON array: [{file, valid, codes, label} | {file, error}].
import * as fs from 'node:fs/promises';
import { JPEG, PNG } from '@trustnxt/c2pa-ts/asset';
import { SuperBox } from '@trustnxt/c2pa-ts/jumbf';
import { ManifestStore } from '@trustnxt/c2pa-ts/manifest';
const results = [];
for (const file of process.argv.slice(2)) {
  const buf = await fs.readFile(file);
  const asset = JPEG.canRead(buf) ? new JPEG(buf) : PNG.canRead(buf) ? new PNG(buf) : null;
  if (!asset) { results.push({ file, error: 'unsupported format' }); continue; }
  const jumbf = asset.getManifestJUMBF();
  if (!jumbf) { results.push({ file, error: 'no manifest' }); continue; }
  try {
    const manifests = ManifestStore.read(SuperBox.fromBuffer(jumbf));
    const result = await manifests.validate(asset);
    results.push({ file, valid: result.isValid, codes: result.statusEntries.map(e => e.code) , label: manifests.getActiveManifest()?.label});
  } catch (e) { results.push({ file, error: String(e) }); }
}
console.log(JSON.stringify(results));
