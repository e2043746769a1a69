// Checks a Linear webhook with Linear's official SDK, for
// tests/all/preset_proofs.rs: argv is secret, the Linear-Signature value
// and the body. LinearWebhookClient.verify throws on a bad signature and on
// a body webhookTimestamp more than a minute from now; this prints "ok"
// when it accepts. The SDK is installed (pinned) into
// tests/all/signers/node_modules by .ci/run.
import { LinearWebhookClient } from "@linear/sdk/webhooks";

const [secret, signature, body] = process.argv.slice(2);
new LinearWebhookClient(secret).verify(Buffer.from(body), signature);
process.stdout.write("ok\n");
