//go:build !race

package ratelimit_test

const raceSlack = 0
