package tier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// gatewayAdmin calls the admin API of a Versity S3 Gateway (versitygw):
// PATCH requests on the S3 port, signed with SigV4 for service "s3" by an
// admin account (see `versitygw admin --help`).
type gatewayAdmin struct {
	endpoint       string
	region         string
	access, secret string
	hc             *http.Client
}

func newGatewayAdmin(endpoint, region, access, secret string) *gatewayAdmin {
	return &gatewayAdmin{endpoint: strings.TrimRight(endpoint, "/"), region: region, access: access, secret: secret, hc: &http.Client{Timeout: 30 * time.Second}}
}

// adminError is an error answer of the admin API.
type adminError struct {
	op      string
	status  int
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func (e *adminError) Error() string {
	return fmt.Sprintf("S3 gateway admin API: %s: %d %s: %s", e.op, e.status, e.Code, e.Message)
}

// call sends a signed admin request and returns the answer's body.
func (a *gatewayAdmin) call(ctx context.Context, op, path string, query url.Values, header http.Header, body []byte) ([]byte, error) {
	u := a.endpoint + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("S3 gateway admin API: %s: %w", op, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: a.access, SecretAccessKey: a.secret}, req, hash, "s3", a.region, time.Now()); err != nil {
		return nil, fmt.Errorf("S3 gateway admin API: %s: sign: %w", op, err)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("S3 gateway admin API: %s: %w", op, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("S3 gateway admin API: %s: %w", op, err)
	}
	if resp.StatusCode >= 300 {
		e := &adminError{op: op, status: resp.StatusCode}
		if xml.Unmarshal(out, e) != nil || e.Code == "" {
			e.Code, e.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(out))
		}
		return nil, e
	}
	return out, nil
}

func isCode(err error, codes ...string) bool {
	var e *adminError
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code == c {
			return true
		}
	}
	return false
}

// account is the gateway's IAM account, as its admin API reads it.
type account struct {
	XMLName xml.Name `xml:"Account"`
	Access  string   `xml:"Access"`
	Secret  string   `xml:"Secret"`
	Role    string   `xml:"Role"`
}

// ensureUser creates an IAM user of role "user" (it may use only buckets
// it owns), or sets the secret of the user that exists.
func (a *gatewayAdmin) ensureUser(ctx context.Context, access, secret string) error {
	body, _ := xml.Marshal(account{Access: access, Secret: secret, Role: "user"})
	_, err := a.call(ctx, "create user "+access, "/create-user", nil, nil, body)
	if !isCode(err, "XAdminUserExists") {
		return err
	}
	props, _ := xml.Marshal(struct {
		XMLName xml.Name `xml:"MutableProps"`
		Secret  string   `xml:"Secret"`
	}{Secret: secret})
	_, err = a.call(ctx, "update user "+access, "/update-user", url.Values{"access": {access}}, nil, props)
	return err
}

// deleteUser deletes an IAM user; a user that does not exist is no error.
func (a *gatewayAdmin) deleteUser(ctx context.Context, access string) error {
	_, err := a.call(ctx, "delete user "+access, "/delete-user", url.Values{"access": {access}}, nil, nil)
	if err != nil && (isCode(err, "XAdminUserNotFound") || strings.Contains(err.Error(), "user not found")) {
		return nil
	}
	return err
}

// ensureBucket creates bucket owned by owner, or gives the existing bucket
// to owner.
func (a *gatewayAdmin) ensureBucket(ctx context.Context, bucket, owner string) error {
	h := http.Header{}
	h.Set("X-Vgw-Owner", owner)
	_, err := a.call(ctx, "create bucket "+bucket, "/"+url.PathEscape(bucket)+"/create", nil, h, nil)
	if !isCode(err, "BucketAlreadyExists", "BucketAlreadyOwnedByYou") {
		return err
	}
	_, err = a.call(ctx, "change owner of bucket "+bucket, "/change-bucket-owner/", url.Values{"bucket": {bucket}, "owner": {owner}}, nil, nil)
	return err
}

// bucketsResult is the admin API's list of buckets and owners.
type bucketsResult struct {
	Buckets []struct {
		Name  string `xml:"Name"`
		Owner string `xml:"Owner"`
	} `xml:"Buckets"`
}

// bucketExists reports whether the gateway has bucket.
func (a *gatewayAdmin) bucketExists(ctx context.Context, bucket string) (bool, error) {
	out, err := a.call(ctx, "list buckets", "/list-buckets", nil, nil, nil)
	if err != nil {
		return false, err
	}
	var r bucketsResult
	if err := xml.Unmarshal(out, &r); err != nil {
		return false, fmt.Errorf("S3 gateway admin API: list buckets: %w", err)
	}
	for _, b := range r.Buckets {
		if b.Name == bucket {
			return true, nil
		}
	}
	return false, nil
}

// deleteBucket deletes an empty bucket through the S3 API; a bucket that
// does not exist is no error.
func (a *gatewayAdmin) deleteBucket(ctx context.Context, client *s3api.Client, bucket string) error {
	_, err := client.DeleteBucket(ctx, &s3api.DeleteBucketInput{Bucket: aws.String(bucket)})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete bucket %s: %w", bucket, err)
	}
	return nil
}
