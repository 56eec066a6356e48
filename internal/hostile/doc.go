// Package hostile holds the hostile-input and secret-canary catalogue tests.
package hostile
