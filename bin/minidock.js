#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS MINIDOCK_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS} node --max-semi-space-size=1 --
// Node is started without NODE_EXTRA_CA_CERTS, whose value comes under
// another name, so that start-up does not load CAs minidock needs only to
// talk TLS (see takeExtraCaCerts in src/cli/context.ts). V8's young
// generation is kept at its starting size: streaming a layer allocates
// fast but keeps little, and V8 would otherwise grow each semi-space to
// 16 MB, so that a pull's memory grew with the image (docs/benchmarks.md).
// The `--` keeps Node 20 from taking minidock's own --env-file flag as its
// own option (https://github.com/nodejs/node/issues/54232).
import { main } from '../dist/src/cli/main.js';

main(process.argv);
