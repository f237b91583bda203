// Package secrets seals credentials with AES-256-GCM under PIPEWATCH_SECRET_KEY before they
// are stored, and opens them again. Plaintext never reaches the database or the logs.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// EnvKey is the environment variable holding the key.
const EnvKey = "PIPEWATCH_SECRET_KEY"

// ErrNoKey is returned when secrets must be stored or read and no key is configured.
var ErrNoKey = errors.New(EnvKey + " is not set: generate one with `openssl rand -hex 32` and export it; " +
	"pipewatch needs it to encrypt stored credentials")

// ErrWrongKey is returned when a sealed value does not open with the configured key.
var ErrWrongKey = errors.New("stored credentials cannot be decrypted with this " + EnvKey +
	" (was the key changed? re-run `pipewatch apply` with the right key, or with the new key to re-store them)")

// Box seals and opens values with one key.
type Box struct {
	aead cipher.AEAD
}

// ParseKey decodes a 32-byte key written as 64 hex characters or standard base64.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	return nil, fmt.Errorf("%s must be 32 random bytes written as 64 hex characters or standard base64 "+
		"(got %d characters); generate one with `openssl rand -hex 32`", EnvKey, len(s))
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secret key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("creating cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating GCM: %w", err)
	}
	return &Box{aead: aead}, nil
}

// FromEnv returns a Box for the key in PIPEWATCH_SECRET_KEY, ErrNoKey when it is unset,
// or a clear error when it is malformed.
func FromEnv() (*Box, error) {
	s := os.Getenv(EnvKey)
	if s == "" {
		return nil, ErrNoKey
	}
	key, err := ParseKey(s)
	if err != nil {
		return nil, err
	}
	return New(key)
}

// Seal encrypts plaintext; additional binds the ciphertext to its owner (for example the
// connection name) so a sealed value cannot be moved to another row.
func (b *Box) Seal(plaintext, additional []byte) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("reading nonce: %w", err)
	}
	return b.aead.Seal(nonce, nonce, plaintext, additional), nil
}

// Open decrypts what Seal returned for the same additional data, or returns ErrWrongKey.
func (b *Box) Open(sealed, additional []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrWrongKey
	}
	plain, err := b.aead.Open(nil, sealed[:n], sealed[n:], additional)
	if err != nil {
		return nil, ErrWrongKey
	}
	return plain, nil
}
