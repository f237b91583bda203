package migrations_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/migrations"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := dbtest.TestSchema(ctx, t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("IdempotentAndConcurrent", func(t *testing.T) {
		var g errgroup.Group
		for range 4 {
			g.Go(func() error { return migrations.Up(ctx, pool, logger) })
		}
		require.NoError(t, g.Wait())
		require.NoError(t, migrations.Check(ctx, pool))
	})
}
