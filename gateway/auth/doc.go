// Package auth authenticates and authorizes API callers: access keys with
// IAM-style policies kept in <data>/auth/keys.json (hot-reloaded), SigV4
// verification by recomputing signatures with the AWS SDK's signer, and
// policy evaluation (explicit Deny wins; * and ? wildcards in actions and
// resources).
package auth
