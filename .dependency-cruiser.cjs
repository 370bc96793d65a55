// The layers of src/, bottom up: errors (src/errors.ts, src/report.ts), mp, comm, then listener
// and monitor side by side, then the face (src/index.ts and the other files directly in src/)
// and the CLI (src/cli). A module imports only from its own layer or below; type-only imports
// (tsPreCompilationDeps) and dynamic import() count. Tests sit above everything and are not
// cruised. Run by `npm run lint`; /work/shared/checks/layering.py checks the same rules.
/** A path pattern for each layer. */
const layer = {
  errors: "^src/(errors|report)\\.ts$",
  mp: "^src/mp/",
  comm: "^src/comm/",
  listener: "^src/listener/",
  monitor: "^src/monitor/",
  face: "^src/(?!errors\\.ts$|report\\.ts$)[^/]+\\.ts$",
  cli: "^src/cli/",
};
const above = {
  errors: [layer.mp, layer.comm, layer.listener, layer.monitor, layer.face, layer.cli],
  mp: [layer.comm, layer.listener, layer.monitor, layer.face, layer.cli],
  comm: [layer.listener, layer.monitor, layer.face, layer.cli],
  listener: [layer.face, layer.cli],
  monitor: [layer.face, layer.cli],
  face: [layer.cli],
};
const upward = Object.entries(above).map(([name, higher]) => ({
  name: `no-upward-from-${name}`,
  comment: `${name} imports only from layers below it (errors < mp < comm < listener | monitor < face < cli)`,
  severity: "error",
  from: { path: layer[name] },
  to: { path: higher },
}));

/** @type {import("dependency-cruiser").IConfiguration} */
module.exports = {
  forbidden: [
    ...upward,
    {
      name: "listener-not-monitor",
      comment: "listener and monitor are siblings: neither imports the other",
      severity: "error",
      from: { path: layer.listener },
      to: { path: layer.monitor },
    },
    {
      name: "monitor-not-listener",
      comment: "listener and monitor are siblings: neither imports the other",
      severity: "error",
      from: { path: layer.monitor },
      to: { path: layer.listener },
    },
    {
      name: "no-circular",
      comment:
        "no cycles between modules, dynamic imports included. A cycle through an `import type` is allowed only " +
        "inside one folder (as layering.py allows): across folders the layer rules above already forbid it, " +
        "since any cycle between layers takes an upward edge",
      severity: "error",
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "\\.test\\.ts$" },
    // Type-only imports are dependencies too: they are checked before TypeScript erases them.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
