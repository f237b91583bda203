package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/pipewatch/pipewatch/connectors"
)

// response is a decoded 2xx answer and the vendor's clock when it was sent.
type response struct {
	// vendorNow is the Date header (zero when absent).
	vendorNow time.Time
}

// call sends method path?query with body (JSON-encoded when not nil) and decodes the 2xx
// answer into out. Errors name the request; a body that is not the expected JSON fails
// with the decoder's reason and the start of the body.
func (c *Connector) call(ctx context.Context, method, path string, query url.Values, body, out any) (response, error) {
	u := c.cfg.BaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var reqBody io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return response{}, fmt.Errorf("encoding the request body of %s %s: %w", method, path, err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, reqBody)
	if err != nil {
		return response{}, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := connectors.Do(c.hc, req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return response{}, ctx.Err()
		}
		return response{}, fmt.Errorf("reading the response to %s %s: %w", method, path, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return response{}, fmt.Errorf("decoding the response to %s %s: %w (body starts %q)", method, path, err, start(raw, 120))
	}
	var r response
	if d := resp.Header.Get("Date"); d != "" {
		if t, err := http.ParseTime(d); err == nil {
			r.vendorNow = t
		}
	}
	return r, nil
}

func start(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
