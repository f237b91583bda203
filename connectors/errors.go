package connectors

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnauthorized means the vendor rejected the credentials, after a token refresh where
// one was possible. Retrying will not help: the connection needs re-authorization.
var ErrUnauthorized = errors.New("the vendor rejected the credentials (401)")

// ErrNotFound means the vendor has no such resource (404).
var ErrNotFound = errors.New("the vendor has no such resource (404)")

// RateLimitError means the vendor asked us to wait longer than the HTTP chain waits in
// place. The job should snooze for RetryAfter and resume from its cursor.
type RateLimitError struct {
	RetryAfter time.Duration
	// Daily is true when a daily budget ran out (RetryAfter then reaches to the reset).
	Daily bool
	// Message is the vendor's explanation, if any.
	Message string
}

func (e *RateLimitError) Error() string {
	kind := "rate limited"
	if e.Daily {
		kind = "daily API limit reached"
	}
	msg := fmt.Sprintf("%s; retry after %s", kind, e.RetryAfter.Round(time.Second))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// HTTPError is a non-2xx response that is not one of the cases above.
type HTTPError struct {
	Method     string
	Path       string // URL path only: query strings may carry credentials
	StatusCode int
	// Body is the start of the response body, for the person reading the error.
	Body string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.StatusCode, e.Body)
}

// Temporary reports whether retrying later may succeed (5xx).
func (e *HTTPError) Temporary() bool { return e.StatusCode >= 500 }

// PermanentError marks a failure that retrying cannot fix (bad configuration, a request the
// vendor rejects as invalid, a payload that cannot be decoded at all).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError.
func Permanent(err error) error { return &PermanentError{Err: err} }
