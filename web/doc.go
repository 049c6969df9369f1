// Package web will hold the console's static assets, embedded with go:embed
// and served by gateway; the console calls only the public HTTP APIs.
package web
