// The code heap of a flow's imports on a 32-bit MicroPython: the webassembly port (npm package
// @micropython/micropython-webassembly-pyscript), 32-bit like the boards, though configured as
// none of them. Loads the same .mpy files as the unix port into its file system and prints
// "code <bytes>": the gc.mem_alloc() delta of importing the modules.
//   node bench/wasm32.mjs <micropython.mjs> <build/mpy> "<module, module>"

import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [mjs, build, modules] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(mjs).href);
const mp = await loadMicroPython({ stdout: (line) => console.log(line) });

// build/mpy as /lib: main.mpy beside the st87 package, as on a board.
function copy(from, to) {
  mp.FS.mkdir(to);
  for (const name of fs.readdirSync(from)) {
    const src = path.join(from, name);
    if (fs.statSync(src).isDirectory()) copy(src, to + "/" + name);
    else if (name.endsWith(".mpy")) mp.FS.writeFile(to + "/" + name, fs.readFileSync(src));
  }
}
copy(build, "/lib");

mp.runPython(
  [
    "import gc, sys",
    "sys.path.insert(0, '/lib')",
    "gc.collect()",
    "a = gc.mem_alloc()",
    "import " + modules,
    "gc.collect()",
    "print('code', gc.mem_alloc() - a)",
  ].join("\n"),
);
