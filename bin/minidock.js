#!/usr/bin/env -S node --
// The `--` keeps Node 20 from taking minidock's own --env-file flag as its
// own option (https://github.com/nodejs/node/issues/54232).
import { main } from '../dist/src/cli/main.js';

main(process.argv);
