// Package mqtt will own the embedded MQTT broker and the bridge to external
// brokers, handing every message to a callback; it knows nothing of HTTP,
// streams or rules. (MQTT telemetry is issue 6.)
package mqtt
