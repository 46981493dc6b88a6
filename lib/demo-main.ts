// `npm start`: the demo on an embedded S3. The SDK warns on every start that
// its 2027 releases will need Node 22; that one warning is switched off here
// (the SDK's own switch), before the SDK loads. Other warnings still print.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { runDemo } = await import('./demo.js');
await runDemo();
