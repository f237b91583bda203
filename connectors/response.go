package connectors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultRateLimitWait is the snooze suggested for a 429 that said nothing about when to retry.
const DefaultRateLimitWait = 10 * time.Second

// maxErrorBody is how much of an error response is kept for the person reading the error.
const maxErrorBody = 512

// Do sends req through hc and returns the response when it is 2xx. Otherwise it returns
// ctx.Err() when the request's context ended, the typed errors of this package for vendor
// answers (see CheckResponse), or the transport's error (wrapped, naming the request).
func Do(hc *http.Client, req *http.Request) (*http.Response, error) {
	resp, err := hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var rl *RateLimitError
		if errors.As(err, &rl) {
			return nil, rl
		}
		if errors.Is(err, ErrUnauthorized) {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, unwrapURLError(err))
		}
		return nil, fmt.Errorf("sending %s %s: %w", req.Method, req.URL.Path, unwrapURLError(err))
	}
	if err := CheckResponse(resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// unwrapURLError drops net/http's *url.Error wrappers, whose messages repeat the full URL
// (query strings may carry credentials).
func unwrapURLError(err error) error {
	for {
		var ue *url.Error
		if !errors.As(err, &ue) {
			return err
		}
		err = ue.Err
	}
}

// CheckResponse classifies a response: nil for 2xx; otherwise it reads and closes the body
// and returns ErrUnauthorized (401), ErrNotFound (404), a *RateLimitError (429, or a 503
// with Retry-After) or an *HTTPError carrying the start of the body.
func CheckResponse(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	_ = resp.Body.Close()
	method, path := "", ""
	if resp.Request != nil {
		method, path = resp.Request.Method, resp.Request.URL.Path
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s %s: %w: %s", method, path, ErrUnauthorized, vendorMessage(body))
	case http.StatusNotFound:
		return fmt.Errorf("%s %s: %w: %s", method, path, ErrNotFound, vendorMessage(body))
	case http.StatusTooManyRequests:
		wait, ok := RetryAfter(resp.Header, time.Now())
		if !ok {
			wait = DefaultRateLimitWait
		}
		return &RateLimitError{RetryAfter: wait, Message: vendorMessage(body)}
	case http.StatusServiceUnavailable:
		if wait, ok := RetryAfter(resp.Header, time.Now()); ok {
			return &RateLimitError{RetryAfter: wait, Message: vendorMessage(body)}
		}
	}
	return &HTTPError{Method: method, Path: path, StatusCode: resp.StatusCode, Body: truncate(string(body), maxErrorBody)}
}

// vendorMessage picks the human message out of a JSON error body ("message", "error",
// "error_description", "detail"), else the start of the body.
func vendorMessage(body []byte) string {
	var fields map[string]any
	if json.Unmarshal(body, &fields) == nil {
		for _, k := range []string{"message", "error_description", "detail", "error"} {
			if s, ok := fields[k].(string); ok && s != "" {
				return truncate(s, maxErrorBody)
			}
		}
	}
	return truncate(strings.TrimSpace(string(body)), maxErrorBody)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
