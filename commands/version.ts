// Written into every event's metadata and every backup, so old data says what wrote it.
export const LEDGER_VERSION = '0.1.0';
export const TOOL_NAME = `ovpn-ledger@${LEDGER_VERSION}`;
