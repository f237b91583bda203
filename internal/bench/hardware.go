package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Hardware is the machine the figures were measured on.
type Hardware struct {
	CPUModel        string `json:"cpu_model"`
	Cores           int    `json:"cores"`
	MemoryBytes     int64  `json:"memory_bytes"`
	OS              string `json:"os"`
	GoVersion       string `json:"go_version"`
	PostgresVersion string `json:"postgres_version"`
}

func hardware(ctx context.Context, pool *pgxpool.Pool) (Hardware, error) {
	h := Hardware{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version(),
		CPUModel: procField("/proc/cpuinfo", "model name")}
	if h.CPUModel == "" {
		h.CPUModel = "unknown CPU"
	}
	if kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64); err == nil {
		h.MemoryBytes = kb * 1024
	}
	if err := pool.QueryRow(ctx, `SHOW server_version`).Scan(&h.PostgresVersion); err != nil {
		return h, fmt.Errorf("reading the server version: %w", err)
	}
	return h, nil
}

// procField returns the value of the first "name: value" line of a /proc file ("" when
// the file or the line is missing, as on systems without /proc).
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
