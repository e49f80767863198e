// Package deploy holds no code: its tests check the release artifacts that
// live outside the Go packages, the Dockerfile, its .dockerignore and the build
// script they share (scripts/build-static.sh). The Helm chart is tested by its
// own module in charts/syncgate/test, so this module gains no Kubernetes
// dependencies.
//
// TestStaticBinaryInEmptyRoot needs root (it chroots); CI runs as root, and
// there the test refuses to skip.
package deploy
