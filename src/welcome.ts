/** What the server prints when it is ready: where to go, and the first admin's password on first start. */
export function welcome(issuer: string, admin?: { email: string; generatedPassword?: string }): string {
  const lines = [
    '',
    `Latchkey is ready at ${issuer}`,
    `  admin console:   ${issuer}/admin`,
    `  your account:    ${issuer}/account`,
    `  OpenID issuer:   ${issuer}   (discovery: ${issuer}/.well-known/openid-configuration)`,
    '  try a sign-in:   npm run demo',
  ];
  if (admin) {
    lines.push('', 'Created the first super admin:', `  email:    ${admin.email}`);
    // Printed once, to the console only: it is never logged or stored in clear.
    if (admin.generatedPassword) lines.push(`  password: ${admin.generatedPassword}   (a one-time password: you choose your own at first sign-in)`);
  }
  return `${lines.join('\n')}\n\n`;
}
