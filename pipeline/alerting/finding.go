package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
)

// finding is a condition that holds now, found outside SQL (coverage, lead velocity).
type finding struct {
	rule     Rule
	subject  string
	ownerID  int64
	team     string
	severity Severity
	details  Details
}

// evidenceHash is the signature of a finding computed in Go.
func evidenceHash(severity string, doc []byte) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(severity + "|"))
	_, _ = h.Write(doc)
	return int64(h.Sum64())
}

func insertFinding(ctx context.Context, tx pgx.Tx, f finding) error {
	doc, err := json.Marshal(f.details)
	if err != nil {
		return fmt.Errorf("encoding the evidence of %s: %w", f.subject, err)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO detect_org_findings (rule, subject_key, owner_id, team, severity, details, sig)
		VALUES ($1, $2, nullif($3, 0), nullif($4, ''), $5, $6, $7)`,
		string(f.rule), f.subject, f.ownerID, f.team, string(f.severity), doc, evidenceHash(string(f.severity), doc)); err != nil {
		return fmt.Errorf("recording finding %s: %w", f.subject, err)
	}
	return nil
}
