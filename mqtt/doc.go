// Package mqtt owns the embedded MQTT broker (mochi-mqtt: TCP, TLS and
// WebSocket listeners) and the bridge to external brokers (paho), handing
// every message to a Handler whose acknowledgement the broker holds back
// until the message is durable. It knows nothing of HTTP, streams or rules.
package mqtt
