// Signs a webhook as Hygraph does, with its official library, for
// tests/all/preset_proofs.rs: argv is secret, body and the signing time in
// milliseconds. The library reads the time from Date.now(), which is set
// to that time first; the signing itself is the library's. Prints the
// gcms-signature header value. Installed (pinned) into
// tests/all/signers/node_modules by .ci/run.
const { generateWebhookSignature } = require("@hygraph/utils");

const [secret, rawPayload, millis] = process.argv.slice(2);
Date.now = () => Number(millis);
process.stdout.write(generateWebhookSignature({ rawPayload, secret }));
