package jobs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDailyAtNext(t *testing.T) {
	t.Parallel()
	s := dailyAt{hour: 23, minute: 50}
	at := func(v string) time.Time {
		ts, err := time.Parse(time.RFC3339, v)
		require.NoError(t, err)
		return ts
	}
	require.Equal(t, at("2026-11-18T23:50:00Z"), s.Next(at("2026-11-18T09:00:00Z")))
	require.Equal(t, at("2026-11-19T23:50:00Z"), s.Next(at("2026-11-18T23:50:00Z")))
	require.Equal(t, at("2026-11-18T23:50:00Z"), s.Next(at("2026-11-19T00:10:00+01:00")), "23:10 UTC: later the same UTC day")
}
