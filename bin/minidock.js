#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS MINIDOCK_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS} node --
// Node is started without NODE_EXTRA_CA_CERTS, whose value comes under
// another name, so that start-up does not load CAs minidock needs only to
// talk TLS (see takeExtraCaCerts in src/cli/context.ts).
// The `--` keeps Node 20 from taking minidock's own --env-file flag as its
// own option (https://github.com/nodejs/node/issues/54232).
import { main } from '../dist/src/cli/main.js';

main(process.argv);
