// Signs a body as GitHub does, with GitHub's own @octokit/webhooks-methods,
// for tests/all/preset_proofs.rs: argv is the secret and the body; prints
// the X-Hub-Signature-256 value sign() returns ("sha256=<hex>"). The
// package is installed (pinned) into tests/all/signers/node_modules by
// .ci/run.
import { sign } from "@octokit/webhooks-methods";

const [secret, body] = process.argv.slice(2);
process.stdout.write(await sign(secret, body));
