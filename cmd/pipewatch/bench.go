package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/internal/bench"
)

// benchDatabase is the scratch database `pipewatch bench` creates on the discovered
// server and drops when done; it never touches the pipewatch database.
const benchDatabase = "pipewatch_bench"

// benchChildCommand is the hidden first argument that makes `pipewatch bench` a sync child.
const benchChildCommand = "sync-child"

func runBench(ctx context.Context, a *app, args []string) error {
	if len(args) > 0 && args[0] == benchChildCommand {
		return runBenchChild(ctx, a, args[1:])
	}
	fs := newFlagSet(a, "bench")
	records := fs.Int("records", bench.DefaultRecords, "size `N`: the write path writes N deals; syncs of about N/10, N and 10×N records measure peak memory (N also the full path and API efficiency); detect and report run on 10×N open deals")
	format := fs.String("format", "table", "output `format`: table or json")
	name := fs.String("database", benchDatabase, "the scratch database's `name`, created on the discovered server and dropped when done")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("%w: --format must be table or json, got %q", errUsage, *format)
	}
	if *records < 10 {
		return fmt.Errorf("%w: --records must be at least 10", errUsage)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to start sync children: %w", err)
	}
	db, err := scratchDatabase(ctx, a, *name)
	if err != nil {
		return err
	}
	defer func() {
		if err := db.drop(context.WithoutCancel(ctx)); err != nil {
			a.logger.Warn("bench: dropping the scratch database", "database", db.name, "error", err)
		}
	}()
	logger := a.logger
	if os.Getenv("PIPEWATCH_LOG_LEVEL") == "" { // progress lines only, unless asked for more
		logger = newLoggerAt(a.stderr, slog.LevelWarn)
	}
	res, err := bench.Run(ctx, bench.Config{
		Records:     *records,
		DatabaseURL: db.url,
		Logger:      logger,
		Progress:    a.stderr,
		StartChild: func(ctx context.Context, args []string) *exec.Cmd {
			return exec.CommandContext(ctx, self, append([]string{"bench", benchChildCommand}, args...)...)
		},
	})
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.WriteTable(a.stdout)
}

// runBenchChild is one sync of the bench, run in its own process so its peak memory can
// be read (bench.RunChild).
func runBenchChild(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("pipewatch bench "+benchChildCommand, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	var c bench.ChildArgs
	fs.StringVar(&c.DatabaseURL, "database-url", "", "the bench database")
	conn := fs.String("connection", "", "the bench connection id")
	mode := fs.String("mode", string(connectors.Incremental), "incremental or full")
	if err := fs.Parse(args); err != nil {
		return err
	}
	id, err := strconv.ParseInt(*conn, 10, 64)
	if err != nil || c.DatabaseURL == "" {
		return errors.New("the sync child needs -database-url and -connection (it is started by `pipewatch bench`)")
	}
	c.ConnectionID, c.Mode = id, connectors.Mode(*mode)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	return bench.RunChild(ctx, c, a.stdout, a.logger)
}

// newLoggerAt is a logger like the app's (PIPEWATCH_LOG_FORMAT) at level.
func newLoggerAt(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("PIPEWATCH_LOG_FORMAT") == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
