package browser_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/spatehq/spate/internal/browser"
)

func TestPath(t *testing.T) {
	t.Setenv(browser.EnvPath, "/nonexistent/chromium")
	if _, err := browser.Path(); err == nil {
		t.Fatal("Path with a missing $SPATE_CHROMIUM: no error")
	}
}

func TestNewDrivesAPage(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>t</title><form method="get" action="/done"><input id="name" name="name"><button id="go">Go</button></form>`)
		if r.URL.Path == "/done" {
			fmt.Fprintf(w, `<p id="result">hello %s</p>`, r.URL.Query().Get("name"))
		}
	}))
	defer ts.Close()
	ctx := browser.New(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL),
		chromedp.SendKeys(chromedp.ID("name"), "ada"),
		chromedp.Click(chromedp.ID("go")),
		chromedp.WaitVisible(chromedp.ID("result")),
	); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("result")))
	if err != nil {
		t.Fatal(err)
	}
	if got != "hello ada" {
		t.Fatalf("result %q, want %q", got, "hello ada")
	}
}
