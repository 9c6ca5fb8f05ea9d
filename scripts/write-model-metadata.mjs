// A Prisma generator that writes the DMMF it is given (the models as Prisma reads them: fields,
// types, native types, keys, indexes) to its `output` as JSON. The generated clients keep only a
// pruned data model at run time; the schema drift test needs the whole of it.
//
// Generators speak JSON-RPC with the Prisma CLI: requests arrive as lines on stdin, responses go
// back as lines on stderr (what @prisma/generator-helper does; that package is not needed for two
// methods).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

const respond = (id, result) => process.stderr.write(`${JSON.stringify({ jsonrpc: '2.0', id, result })}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  const request = JSON.parse(line);
  if (request.method === 'getManifest') {
    respond(request.id, { manifest: { prettyName: 'Model metadata', requiresEngines: [] } });
  } else if (request.method === 'generate') {
    const file = request.params.generator.output.value;
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(request.params.dmmf.datamodel, null, 2)}\n`);
    respond(request.id, null);
  }
});
