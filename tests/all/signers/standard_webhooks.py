"""Signs a Standard Webhooks delivery with an official SDK, for
tests/all/preset_proofs.rs: argv is sdk (standardwebhooks or svix), secret,
message id, Unix seconds, body, key form (whsec: the SDK's own decoding of
the secret; raw: the secret's bytes are the key, as Polar's SDK arranges).
Prints the SDK's signature header value ("v1,<base64>")."""

import sys
from datetime import datetime, timezone

sdk, secret, msg_id, seconds, body, form = sys.argv[1:7]
if sdk == "svix":
    from svix.webhooks import Webhook
else:
    from standardwebhooks import Webhook

key = secret.encode() if form == "raw" else secret
when = datetime.fromtimestamp(int(seconds), tz=timezone.utc)
print(Webhook(key).sign(msg_id, when, body))
