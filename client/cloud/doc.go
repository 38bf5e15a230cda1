// Package cloud is the client side of a Spate control plane's accounts:
// signing in, the tenant, cluster and auth APIs, and the client
// certificates that reach a cluster's SPUs.
//
// # Signing in
//
// A person signs in with the OAuth 2.0 device authorization grant
// (RFC 8628, DeviceLogin): the control plane shows a code, the person
// approves it on the control plane's /device page, and the program gets an
// access token (a JWT, 15 minutes) and a refresh token (30 days, rotated on
// every use). Programs sign in with an API key (APIKeyLogin). Refresh
// exchanges a refresh token for new tokens; Revoke ends a login.
//
// The protocol is form-encoded POSTs to the control plane's HTTPS port:
//
//	POST /oauth/device/code  client_id=spate-cli
//	POST /oauth/token        grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=...&client_id=spate-cli
//	POST /oauth/token        grant_type=refresh_token&refresh_token=sprt_...
//	POST /oauth/token        grant_type=urn:spate:params:oauth:grant-type:api-key&api_key=spk_...
//	POST /oauth/revoke       token=sprt_...
//
// answered with JSON; errors are {"error": "...", "error_description":
// "..."} (see Error).
//
// # Sessions
//
// A Session is a login on one control plane. It is a TokenSource for the
// SDK (client.WithToken) that refreshes the access token a minute before it
// expires, once for all concurrent callers, and reports the rotated tokens
// to OnRefresh so that they can be saved. Processes that share a login
// (the CLI's config file) give it a TokenStore, so that they refresh under
// one lock and never spend the same refresh token twice, which would make
// the control plane revoke the login. Its Tenants, Clusters and Auth
// methods return the Connect clients of the control plane's APIs.
//
// # Certificates
//
// SPUs accept only client certificates of their cluster. UseCluster makes
// a key (ECDSA P-256) and a certificate request, has the control plane sign
// it (ClusterService.IssueClientCertificate) and returns a profile.Profile
// that client.FromProfile turns into a Client. Certificates live 12 hours
// by default: RenewIfNeeded renews one with less than a third of its life
// left (what the CLI does before each command), and a CertRenewer renews
// the certificate of a long-running Client in the background.
package cloud
