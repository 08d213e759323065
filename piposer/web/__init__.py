"""The appliance's web server: the console (live view, stats, controls, zone editor), its login, the pose
stream's static pages. The server itself runs inside `WebSocketSink` (piposer/sinks/websocket.py)."""
