// Command pipewatch syncs CRM pipelines into Postgres, watches them and tells sales
// teams in Slack. This package is wiring only: flags and environment → pool →
// connectors → River. See README.md for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of the binary.
type command struct {
	summary string
	run     func(ctx context.Context, app *app, args []string) error
}

var commands = map[string]command{
	"migrate":   {"apply app + River migrations (idempotent, safe concurrently)", runMigrate},
	"sync":      {"sync now in the foreground and print a summary (--connection NAME --stream S --full)", runSync},
	"apply":     {"validate a config file and apply it to the database (-f pipewatch.yaml)", runApply},
	"worker":    {"run River workers, periodic jobs and the HTTP server until SIGINT/SIGTERM", runWorker},
	"report":    {"pipeline metrics for a period and scope (--period 2026-Q4 --scope team:east --format table|json)", runReport},
	"detect":    {"evaluate the alert rules now and tell who needs to know (--dry-run shows what would fire and why)", runDetect},
	"reminders": {"list follow-up reminders: what is scheduled and why (list --owner EMAIL --all --format table|json)", runReminders},
	"demo":      {"the whole product on a generated company: sandbox CRMs, sync, report, alerts, Slack to the console (--once)", runDemo},
	"bench":     {"measure the performance figures in a scratch database (--records N --format table|json)", runBench},
}

// errUsage marks a command-line mistake: the message is printed with the usage and exit code 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "pipewatch: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a := newApp(stdout, stderr)
	defer a.close()
	if err := cmd.run(ctx, a, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "pipewatch %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "pipewatch %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pipewatch <command> [flags]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun `pipewatch <command> -h` for a command's flags. Environment: see README.md.")
}

// newFlagSet returns a flag set for a subcommand that reports errors instead of exiting.
func newFlagSet(a *app, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("pipewatch "+name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	return fs
}

func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch strings.ToLower(os.Getenv("PIPEWATCH_LOG_LEVEL")) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("PIPEWATCH_LOG_FORMAT") == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
