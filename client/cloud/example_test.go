package cloud_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/client/profile"
)

// A long-running program signs in with an API key, gets a client
// certificate for a cluster and keeps it fresh while it produces.
func Example() {
	ctx := context.Background()
	cpURL := "https://cloud.example.com"
	hc, err := cloud.NewHTTPClient(nil) // or the PEM of the control plane's CA
	if err != nil {
		log.Fatal(err)
	}
	tokens, err := cloud.APIKeyLogin(ctx, cpURL, hc, os.Getenv("SPATE_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	sess := cloud.NewSession(cpURL, hc, tokens)
	p, err := cloud.UseCluster(ctx, sess, "orders")
	if err != nil {
		log.Fatal(err)
	}
	renewer, err := cloud.NewCertRenewer(sess, p, func(p profile.Profile, err error) {
		if err != nil {
			log.Printf("renew client certificate: %v", err)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	defer renewer.Close()
	c, err := client.FromProfile(p, renewer.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("connected to cluster", p.Cluster)
}
