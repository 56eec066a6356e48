//go:build race

package soak

// raceEnabled: the test binary runs under the race detector, so the poolboy
// binary the actors run is built with it too.
const raceEnabled = true
