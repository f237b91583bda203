package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/migrations"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// buildBinary builds pipewatch into a temp dir: these tests run the real binary, as
// people and docker-compose do.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pipewatch")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// pipewatch runs the binary with env added to this process's environment and returns
// its exit code, stdout and stderr.
func pipewatch(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	require.NoError(t, err)
	return 0, stdout.String(), stderr.String()
}

// freshDatabase returns the URL of a database that doesn't exist yet on the test
// server, and drops it when the test ends.
func freshDatabase(ctx context.Context, t *testing.T) string {
	t.Helper()
	server := dbtest.URL(ctx, t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "pipewatch_test_cmd_" + hex.EncodeToString(b)
	u, err := url.Parse(server)
	require.NoError(t, err)
	u.Path = "/" + name
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, server)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		require.NoError(t, err)
	})
	return u.String()
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := buildBinary(t)
	dbURL := freshDatabase(ctx, t)
	env := []string{"DATABASE_URL=" + dbURL}

	t.Run("FourAtOnceOnAnEmptyDatabase", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make([]string, 4)
		for i := range results {
			wg.Go(func() {
				code, _, stderr := pipewatch(t, bin, env, "migrate")
				results[i] = fmt.Sprintf("exit %d: %s", code, stderr)
			})
		}
		wg.Wait()
		for _, r := range results {
			require.True(t, strings.HasPrefix(r, "exit 0: "), r)
			require.Contains(t, r, "migrate: database is current")
		}
		pool, err := pgxpool.New(ctx, dbURL)
		require.NoError(t, err)
		defer pool.Close()
		require.NoError(t, migrations.Check(ctx, pool))
	})

	t.Run("AgainChangesNothing", func(t *testing.T) {
		code, _, stderr := pipewatch(t, bin, env, "migrate")
		require.Equal(t, 0, code, stderr)
		require.NotContains(t, stderr, "applied")
	})
}

const validConfig = `org:
  timezone: Europe/Berlin
  currency: EUR
teams:
  - name: emea
    manager_email: maria@example.com
    members: [ana@example.com]
connections:
  - name: hubspot-main
    kind: hubspot
    auth:
      token_env: CMDTEST_HUBSPOT_TOKEN
  - name: pd
    kind: pipedrive
    base_url: https://acme.pipedrive.com
    auth:
      oauth:
        client_id_env: CMDTEST_PD_CLIENT_ID
        client_secret_env: CMDTEST_PD_CLIENT_SECRET
        refresh_token_env: CMDTEST_PD_REFRESH_TOKEN
    schedule: 5m
targets:
  - owner_email: ana@example.com
    period: 2026-Q4
    amount: 250000
`

const brokenConfig = `org:
  currency: EURO
connections:
  - name: hubspot-main
    kind: hubspot
    auth:
      token_env: CMDTEST_HUBSPOT_TOKEN
  - name: pd
    kind: pipedrivee
    auth:
      token_env: CMDTEST_UNSET_TOKEN
targets:
  - owner_email: ana@example.com
    period: 2026-Q9
    amount: 250000
    colour: red
`

func TestApplyCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := buildBinary(t)
	schema, pool := dbtest.TestSchema(ctx, t)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	valid, broken := write("pipewatch.yaml", validConfig), write("broken.yaml", brokenConfig)
	secretValues := []string{"pat-na1-cmdtest-secret", "pd-client-secret-value", "pd-refresh-token-value"}
	env := []string{
		"DATABASE_URL=" + dbtest.SchemaURL(ctx, t, schema),
		"PIPEWATCH_SECRET_KEY=" + strings.Repeat("ab", 32),
		"CMDTEST_HUBSPOT_TOKEN=" + secretValues[0],
		"CMDTEST_PD_CLIENT_ID=pd-client-id",
		"CMDTEST_PD_CLIENT_SECRET=" + secretValues[1],
		"CMDTEST_PD_REFRESH_TOKEN=" + secretValues[2],
	}
	// snapshot is everything apply writes, as text.
	snapshot := func() string {
		var s string
		err := pool.QueryRow(ctx, `SELECT concat_ws(' | ',
			(SELECT string_agg(concat_ws(',', name, kind, status, config::text), ';' ORDER BY name) FROM connections),
			(SELECT string_agg(encode(ciphertext, 'hex'), ';' ORDER BY connection_id) FROM connection_credentials),
			(SELECT string_agg(concat_ws(',', owner_email, team, period_start, period_end, amount, currency), ';' ORDER BY id) FROM targets),
			(SELECT string_agg(key || '=' || value::text, ';' ORDER BY key) FROM settings))`).Scan(&s)
		require.NoError(t, err)
		return s
	}
	noSecrets := func(outputs ...string) {
		t.Helper()
		for _, out := range outputs {
			for _, secret := range secretValues {
				require.NotContains(t, out, secret)
			}
		}
	}

	code, stdout, stderr := pipewatch(t, bin, env, "apply", "-f", valid)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "connection hubspot-main: created (hubspot, every 15m)\n")
	require.Contains(t, stdout, "credentials pd: stored\n")
	require.Contains(t, stdout, "target ana@example.com 2026-Q4 EUR: created (250000)\n")
	require.Regexp(t, `\napplied \d+ changes\n$`, stdout)
	noSecrets(stdout, stderr, snapshot())
	before := snapshot()

	t.Run("BrokenFileListsEveryProblemAndChangesNothing", func(t *testing.T) {
		code, stdout, stderr := pipewatch(t, bin, env, "apply", "-f", broken)
		require.Equal(t, 1, code)
		require.Empty(t, stdout)
		require.Equal(t, "pipewatch apply: 5 problems in the config file:\n"+
			"  "+broken+`:2:13: org.currency: want a 3-letter ISO 4217 currency code like USD or EUR, got "EURO"`+"\n"+
			"  "+broken+`:9:11: connections[1].kind: unknown kind "pipedrivee" (want hubspot, salesforce, pipedrive or mailchimp)`+"\n"+
			"  "+broken+":11:18: connections[1].auth.token_env: environment variable CMDTEST_UNSET_TOKEN is not set (export it before running `pipewatch apply`)\n"+
			"  "+broken+`:14:13: targets[0].period: want a quarter like 2026-Q4 or a month like 2026-11, got "2026-Q9"`+"\n"+
			"  "+broken+":16:5: targets[0].colour: unknown key (want one of owner_email, team, period, amount, currency)\n", stderr)
		require.Equal(t, before, snapshot(), "a broken file changes nothing")
	})

	t.Run("SecondApplyChangesNothing", func(t *testing.T) {
		code, stdout, stderr := pipewatch(t, bin, env, "apply", "-f", valid)
		require.Equal(t, 0, code, stderr)
		require.Equal(t, "no changes: the database already matches the file\n", stdout)
		require.Equal(t, before, snapshot())
	})

	t.Run("DryRunWritesNothing", func(t *testing.T) {
		changed := strings.Replace(validConfig, "amount: 250000", "amount: 300000", 1)
		code, stdout, stderr := pipewatch(t, bin, env, "apply", "-dry-run", "-f", write("changed.yaml", changed))
		require.Equal(t, 0, code, stderr)
		require.Equal(t, "target ana@example.com 2026-Q4 EUR: updated (250000 → 300000)\napplied 1 change\ndry run: nothing was written\n", stdout)
		require.Equal(t, before, snapshot())
	})

	t.Run("MissingKeyIsAClearError", func(t *testing.T) {
		code, stdout, stderr := pipewatch(t, bin, append(env, "PIPEWATCH_SECRET_KEY="), "apply", "-f", valid)
		require.Equal(t, 1, code)
		require.Empty(t, stdout)
		require.Equal(t, "pipewatch apply: storing the credentials of 2 connection(s): PIPEWATCH_SECRET_KEY is not set: "+
			"generate one with `openssl rand -hex 32` and export it; pipewatch needs it to encrypt stored credentials\n", stderr)
		require.Equal(t, before, snapshot())
	})

	t.Run("WarnsAboutUnmappedStages", func(t *testing.T) {
		_, err := pool.Exec(ctx, `INSERT INTO stages (connection_id, external_id, name)
			SELECT id, '777', 'Legal review' FROM connections WHERE name = 'hubspot-main'`)
		require.NoError(t, err)
		code, stdout, stderr := pipewatch(t, bin, env, "apply", "-f", valid)
		require.Equal(t, 0, code, stderr)
		require.Equal(t, "no changes: the database already matches the file\n"+
			"warning: 1 synced stages map to no standard stage; add them to the connection's stage_map:\n"+
			"  hubspot-main: \"Legal review\" (id 777, pipeline \"\", 0 open deals)\n", stdout)
	})

	t.Run("Usage", func(t *testing.T) {
		code, _, stderr := pipewatch(t, bin, env, "apply")
		require.Equal(t, 2, code)
		require.Equal(t, "pipewatch apply: usage: pipewatch apply -f pipewatch.yaml [-dry-run]\n", stderr)
	})
}

func TestWorkerCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := buildBinary(t)
	schema, _ := dbtest.TestSchema(ctx, t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	cmd := exec.Command(bin, "worker")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbtest.SchemaURL(ctx, t, schema), "PIPEWATCH_HTTP_ADDR="+addr)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	status := func(path string) (int, string) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("worker exited early (%v):\n%s", err, logs.String())
		default:
		}
		if code, _ := status("/healthz"); code == http.StatusOK {
			break
		}
		require.True(t, time.Now().Before(deadline), "no /healthz after 30s; logs:\n%s", logs.String())
	}
	code, body := status("/readyz")
	require.Equal(t, http.StatusOK, code, body)
	code, body = status("/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "go_goroutines ")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "worker exit; logs:\n%s", logs.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("worker still running 10s after SIGTERM; logs:\n%s", logs.String())
	}
	require.Contains(t, logs.String(), `msg="worker: started"`)
	require.Contains(t, logs.String(), `msg="web: stopped"`)
	require.Contains(t, logs.String(), `msg="worker: stopped"`)
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test reading it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
