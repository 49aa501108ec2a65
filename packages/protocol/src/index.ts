export * from './codes.js';
export * from './client-frames.js';
export * from './parse-client-frame.js';
export * from './server-frames.js';
