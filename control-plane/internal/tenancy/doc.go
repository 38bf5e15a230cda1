// Package tenancy keeps the cloud service's metadata in etcd: tenants,
// their users and service accounts, API keys, refresh tokens, OAuth device
// codes, clusters, the token signing keys and the root CA. Every
// control-plane replica reads and writes the same keys.
//
// Uniqueness (tenant names, emails across the service, service-account and
// cluster names within a tenant, user codes of live device codes) is kept
// by index keys written in the same etcd transaction as the record, under
// a create-if-absent comparison; deletes remove the index keys in the same
// transaction. Read-modify-write updates compare the mod revision and
// retry a bounded number of times (ErrConflict).
//
// # Key layout
//
// All keys live under Prefix, "/spate/v1/cloud/" (inside the "/spate/v1/"
// space of package store, whose loader ignores them). Values are JSON
// objects unless said otherwise; []byte fields are base64.
//
//	tenants/<tenant>                         Tenant
//	tenant-names/<name>                      tenant id (plain string)
//	principals/<tenant>/users/<user>         User; Email lowercased
//	principals/<tenant>/service-accounts/<sa>
//	                                         ServiceAccount
//	emails/<email>                           {tenant, user}: the email's user
//	service-account-names/<tenant>/<name>    service account id (plain string)
//	api-keys/<tenant>/<principal>/<id>       APIKey (hash of the secret only)
//	api-key-ids/<id>                         {tenant, principal}: where the
//	                                         key with that id lives
//	refresh/<id>                             RefreshToken, under a lease
//	refresh-families/<family>/<id>           {tenant, principal, family},
//	                                         same lease as the token
//	refresh-principals/<tenant>/<principal>/<id>
//	                                         {tenant, principal, family},
//	                                         same lease as the token
//	refresh-revoked/<family>                 empty; a revoked family, under a
//	                                         one-hour lease
//	device-codes/<hash>                      DeviceCode, under a lease;
//	                                         <hash> is the device code's hash
//	                                         (secret.HashDeviceCode), in hex
//	user-codes/<user code>                   {hash (hex), expires_at}, same
//	                                         lease as the device code
//	clusters/<cluster>                       Cluster, with its CA
//	cluster-names/<tenant>/<name>            cluster id (plain string)
//	signing-keys                             JSON array of the token signing
//	                                         keys, each token.MarshalKey's
//	                                         bytes (base64)
//	root-ca                                  {cert_pem, key_pem}
//	smartmodules/<tenant>/<group>/<name>/<version>
//	                                         SmartModule (the bytes are in
//	                                         the control plane's blob store,
//	                                         key smartmodules/<tenant>/<hex>.wasm)
//	smartmodule-refs/<tenant>/<hex>/versions/<group>/<name>/<version>
//	                                         empty: a version whose bytes
//	                                         have the SHA-256 <hex>
//	smartmodule-refs/<tenant>/<hex>/uploads/<id>
//	                                         empty, under a lease: an upload
//	                                         of the blob in progress
//	smartmodule-blob-deletes/<tenant>/<hex>  empty, under a lease: the blob
//	                                         is being deleted
//
// <tenant>, <user>, <sa>, <principal>, <cluster>, <family> and the ids of
// keys and tokens are ids (identity.ValidID: no '/'), checked on create,
// so a prefix ending in '/' holds exactly one tenant's or principal's
// keys. Names and emails only ever end a key.
//
// SmartModule names have exactly two segments and versions none, so each
// of these prefixes ending in '/' holds one tenant's, one module's or one
// blob's keys. A blob is written before the version that refers to it,
// under an upload mark, and deleted only after a transaction found no
// version and no upload referring to it and set the delete mark, which
// new uploads wait for: a blob in use is never deleted.
//
// The watch on principals/ is what WatchTenants reports: the tenant id is
// the key's first segment after the prefix.
//
// # Expiring records
//
// Refresh tokens and device codes are written under an etcd lease granted
// for the time left until their ExpiresAt, rounded up to whole seconds,
// so etcd removes them (and their index keys) after they expire. Until it
// does, readers compare ExpiresAt with the clock and treat an expired
// record as absent. Updates keep the lease (WithIgnoreLease). A used
// refresh token stays stored, marked Used, until it expires: using it
// again revokes its family.
//
// # Secrets
//
// API keys, refresh tokens and device codes are stored as hashes only.
// Passwords are stored as argon2id hashes. The root CA's key and each
// cluster's intermediate CA key are stored as given, unencrypted: whoever
// can read etcd can issue certificates for every tenant, so etcd access
// must be protected (client TLS, no other users, encrypted disks).
// Encrypting CA keys at rest is future work.
package tenancy
