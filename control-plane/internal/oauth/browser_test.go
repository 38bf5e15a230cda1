package oauth_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/spatehq/spate/internal/browser"
)

// TestDeviceApprovalInChromium signs in and approves on the real page in
// headless Chromium, as a person does after `spate login`.
func TestDeviceApprovalInChromium(t *testing.T) {
	e := newEnv(t)
	ada := e.newUser()
	da := e.deviceCode()
	e.wantError(e.poll(da.DeviceCode), http.StatusBadRequest, "authorization_pending")

	ctx, cancel := context.WithTimeout(browser.New(t), time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(da.VerificationURIComplete),
		chromedp.WaitVisible(chromedp.ID("email")),
	); err != nil {
		t.Fatal(err)
	}
	code, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("user_code")))
	if err != nil {
		t.Fatal(err)
	}
	if code != da.UserCode {
		t.Fatalf("user code field %q, want %q prefilled", code, da.UserCode)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("email"), ada.Email),
		chromedp.SendKeys(chromedp.ID("password"), ada.Password),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("approve")),
	); err != nil {
		t.Fatal(err)
	}
	shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("approve-code")))
	if err != nil {
		t.Fatal(err)
	}
	if shown != da.UserCode {
		t.Fatalf("approval page shows code %q, want %q", shown, da.UserCode)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("result")),
	); err != nil {
		t.Fatal(err)
	}
	result, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("result")))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Device approved. You can close this window and return to your terminal."; result != want {
		t.Fatalf("result %q, want %q", result, want)
	}

	e.clock.advance(6 * time.Second)
	a := e.poll(da.DeviceCode)
	if a.status != http.StatusOK {
		t.Fatalf("token after approval in the browser: %+v", a)
	}
	if c := e.verify(a.AccessToken); c.Subject != ada.ID || c.Name != ada.Email {
		t.Fatalf("claims %+v", c)
	}
}
