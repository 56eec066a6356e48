package resource

import (
	"bytes"
	"context"
	"strings"

	"github.com/poolboy-ci/poolboy/internal/gitx"
)

// writeBlob stores data as a blob, byte for byte (no filters), and returns its id.
func writeBlob(ctx context.Context, repo *gitx.Repo, data []byte) (string, error) {
	out, err := repo.Input(ctx, bytes.NewReader(data), nil, "hash-object", "-w", "--no-filters", "--stdin")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
