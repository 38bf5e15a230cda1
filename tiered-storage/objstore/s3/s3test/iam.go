package s3test

import "testing"

// StartIAM starts a server as [Start] does, with the gateway's internal IAM
// service on (accounts kept in a temporary folder, read without a cache,
// so that a deleted account is refused at once) and its admin API on the
// S3 port. [AccessKey] and [SecretKey] are then the root (admin) account's
// keys, which `versitygw admin` and the admin API take; accounts of role
// "user" it creates may use only the buckets they own.
//
// The options reach the server through its environment (VGW_IAM_DIR,
// VGW_IAM_CACHE_DISABLE), set with t.Setenv for the rest of the test: the
// test must not be parallel, and every server it starts afterwards has
// IAM on too.
func StartIAM(t *testing.T) *Server {
	t.Helper()
	t.Setenv("VGW_IAM_DIR", t.TempDir())
	t.Setenv("VGW_IAM_CACHE_DISABLE", "true")
	return Start(t)
}
