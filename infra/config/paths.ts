// Where the operator's configuration files live inside $OVL_CONFIG_DIR.
import { join } from 'node:path';

export const gatewayConfPath = (configDir: string): string => join(configDir, 'gateway.conf');
export const emailConfPath = (configDir: string): string => join(configDir, 'email.conf');
export const dnsConfPath = (configDir: string): string => join(configDir, 'dns.conf');
