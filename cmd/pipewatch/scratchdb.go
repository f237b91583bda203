package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pipewatch/pipewatch/internal/devdb"
)

// scratchDB is a database of its own that `pipewatch demo` and `pipewatch bench` create
// on the server pipewatch discovers, so they never touch the pipewatch database.
type scratchDB struct {
	name string
	// url reaches the database; admin reaches the server's maintenance database.
	url, admin string
}

// scratchDatabase (re)creates the empty database name on the server the other commands
// use — DATABASE_URL's server, else the local default, else the private instance — and
// returns it. Whatever database DATABASE_URL names is left alone.
func scratchDatabase(ctx context.Context, a *app, name string) (*scratchDB, error) {
	d := &devdb.Discovery{EnvVar: "DATABASE_URL", Database: name, Logger: a.logger}
	found, err := d.URL(ctx)
	if err != nil {
		return nil, err
	}
	db := &scratchDB{name: name}
	if db.url, err = withDatabase(found, name); err != nil {
		return nil, err
	}
	if db.admin, err = withDatabase(found, "postgres"); err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, db.admin)
	if err != nil {
		return nil, fmt.Errorf("connecting to the server to create the %s database: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return nil, fmt.Errorf("resetting the %s database: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return nil, fmt.Errorf("creating the %s database: the database user may not create databases (grant CREATEDB, or set DATABASE_URL to a server where it may): %w", name, err)
		}
		return nil, fmt.Errorf("creating the %s database: %w", name, err)
	}
	return db, nil
}

// drop removes the database.
func (db *scratchDB) drop(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, db.admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db.name}.Sanitize()+" WITH (FORCE)")
	return err
}

// withDatabase returns the connection string s naming database name instead of its own.
func withDatabase(s, name string) (string, error) {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("parsing the database URL: %w", err)
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	// A keyword/value string: a later dbname wins.
	return s + " dbname=" + name, nil
}
