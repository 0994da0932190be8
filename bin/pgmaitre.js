#!/usr/bin/env node
'use strict';
// bin/pgmaitre.js — command-line entry: the compiled process entry does the work.
require('../dist/src/main.js');
