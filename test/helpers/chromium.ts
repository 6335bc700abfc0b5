import fs from 'node:fs';
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import jsqrModule from 'jsqr';
import { PNG } from 'pngjs';
import { PROJECT_ROOT } from '../../src/paths.js';

/** Debian's Chromium, headless, with nothing reaching outside this machine. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export const ARTIFACTS = path.join(PROJECT_ROOT, 'test-artifacts');

export function artifactPath(name: string): string {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

// jsqr is CommonJS with `exports.default`: depending on the loader its default import is the function or the module.
type DecodeQr = typeof jsqrModule.default;
const jsQR: DecodeQr = (jsqrModule as unknown as { default: DecodeQr }).default ?? (jsqrModule as unknown as DecodeQr);

/** Reads a QR code the way a phone would: from the pixels on screen. */
export async function decodeQr(element: Locator): Promise<string> {
  const png = PNG.sync.read(await element.screenshot());
  const result = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
  if (!result) throw new Error('no QR code found in the screenshot');
  return result.data;
}

export interface VirtualAuthenticatorOptions {
  /** Whether the authenticator verifies its user (a PIN or fingerprint on the device). */
  isUserVerified?: boolean;
}

/**
 * A platform authenticator inside this page's browser (Chrome DevTools Protocol `WebAuthn` domain): CTAP2 over the
 * internal transport, resident keys, user verification. Real ceremonies, real signatures, no prompt to click.
 */
export async function virtualAuthenticator(context: BrowserContext, page: Page, options: VirtualAuthenticatorOptions = {}) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: options.isUserVerified ?? true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials,
    /** Puts a credential (as `credentials()` returned it) in this authenticator: the same passkey in a fresh browser. */
    add: async (credential: Awaited<ReturnType<typeof cdp.send<'WebAuthn.getCredentials'>>>['credentials'][number]) =>
      cdp.send('WebAuthn.addCredential', { authenticatorId, credential }),
  };
}
