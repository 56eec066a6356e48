package resource

import (
	"context"
	"fmt"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/policy"
)

// endedCheckTimeout bounds asking Concourse whether the build ended while its
// put waited: the answer delays the put's success by this much at most.
const endedCheckTimeout = 15 * time.Second

// endedWhileWaiting asks the source's Concourse, when it configures one, about
// this very build (its claim names the build id, so the answer cannot be about a
// build of the same name) after a claim landed for a put that waited: a build that
// ended meanwhile (a lost worker: nobody sent the put a signal) holds a lock it
// will never release. It returns that evidence, nil when the build did not end or
// nobody can tell: an error, a 404, or no Concourse is never evidence.
func (o *outRun) endedWhileWaiting(ctx context.Context, commit string, pl plan) *policy.Build {
	owner := commitmsg.Parse(pl.msg).Owner
	if owner.ID == "" || !owner.Known() {
		return nil
	}
	w, err := o.witness(liveness.Options{Deadline: endedCheckTimeout})
	if err != nil || w == nil {
		return nil
	}
	// No claim time: the build id settles whose build it is, and a build that
	// ended while it waited ended before its claim.
	ev := w.Evidence(ctx, []liveness.Claim{{Commit: commit, Owner: owner, Waiting: true}})[commit]
	if ev != nil && ev.Err != "" {
		fmt.Fprintf(o.log, "warning: could not ask Concourse whether this build is still running (%s); keeping lock %s\n", oneLine(ev.Err), pl.lock)
	}
	if !policy.Ended(ev) {
		return nil
	}
	return ev
}
