/**
 * SQL classifier: pure, synchronous after initClassifier(); no I/O.
 * Decides per query string what it is and whether a read-only standby may run it (fail closed).
 */
export { classify, classifierStats, createClassifier, initClassifier } from './classify';
export { firstKeyword } from './lexer';
export { SAFE_FUNCTIONS, WRITER_FUNCTIONS } from './functions';
export { QueryKinds } from './types';
export type {
  AdminCommand, Classifier, ClassifierStats, ClassifyOptions, ParsedBy, QueryClass, QueryFlags, QueryKind, ShapeHint,
} from './types';
