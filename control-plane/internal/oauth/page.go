package oauth

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"
)

//go:embed page.html
var pageHTML string

// pageTemplate renders every state of the device page; no JavaScript.
var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

// page is one state of the device page: exactly one field is set.
type page struct {
	SignIn  *signInView
	Approve *approveView
	Result  *resultView
}

// pageCSP allows the inline style and form posts to this origin only.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// render writes a page with the security headers.
func (s *Server) render(w http.ResponseWriter, status int, p page) {
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, p); err != nil {
		s.log.Error("oauth: render device page", "err", err)
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString("internal error")
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// pageTooMany answers 429 with the sign-in form and a message.
func (s *Server) pageTooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, view signInView) {
	s.log.Warn("oauth: refused", "reason", "too many failed attempts", "remote", remoteIP(r), "path", r.URL.Path, "retry_after", wait)
	w.Header().Set("Retry-After", strconv.FormatInt(seconds(wait), 10))
	view.Error = fmt.Sprintf("Too many attempts. Wait %d seconds and try again.", seconds(wait))
	s.render(w, http.StatusTooManyRequests, page{SignIn: &view})
}

// pageError logs err and shows the sign-in form with a message that
// tells nothing of it.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, op string, err error) {
	s.log.Error("oauth: "+op, "err", err, "remote", remoteIP(r), "path", r.URL.Path)
	s.render(w, http.StatusInternalServerError, page{SignIn: &signInView{Error: msgInternal}})
}
