import { z } from 'zod';
import { SETTING_NAMES, type SettingName, settingSchemas, type SettingsStore } from '../../config/settings.js';
import type { Queries } from '../../db/index.js';
import { AppError } from '../../errors.js';
import { actorOf, PEOPLE_ADMINS } from './common.js';
import { ifMatchVersion, operation, Reply } from './operation.js';

const etag = (version: number) => `"${version}"`;

/** `getEnforceMfaSetting`, `putLockoutSetting`…: the console finds the operation for a form by the same name. */
export const settingOperationId = (verb: 'get' | 'put', name: SettingName) =>
  `${verb}${name.replace(/(^|-)(\w)/g, (_all, _dash, letter: string) => letter.toUpperCase())}Setting`;

export function settingOperations(deps: { queries: Queries; settings: SettingsStore; builtFactors: readonly string[] }) {
  const { settings, queries } = deps;
  const tag = 'settings';
  /** Some settings need more than their schema: the factors named must be ones this server can offer. */
  const check = (name: SettingName, value: unknown) => {
    if (name !== 'factors') return;
    const unknown = (value as { enabled: string[] }).enabled.filter((id) => !deps.builtFactors.includes(id));
    if (unknown.length) throw new AppError(400, 'invalid_request', `not available on this server: ${unknown.join(', ')}`, 'enabled', `enabled: ${unknown.join(', ')} not configured (available: ${deps.builtFactors.join(', ')})`);
  };

  return [
    operation({
      id: 'listSettings',
      method: 'get',
      path: '/settings',
      tag,
      summary: 'Every setting with its version',
      roles: ['super_admin', 'auditor'],
      responses: {
        200: {
          description: 'the settings',
          schema: z.object(Object.fromEntries(SETTING_NAMES.map((name) => [name, z.object({ value: settingSchemas[name], version: z.number().int() })]))),
        },
      },
      handle: async () => settings.readAll(),
    }),
    ...SETTING_NAMES.flatMap((name) => [
        operation({
          id: settingOperationId('get', name),
          method: 'get',
          path: `/settings/${name}`,
          tag,
          summary: `The ${name} setting, with its version as ETag`,
          roles: name === 'enforce-mfa' ? ['super_admin', 'auditor', ...PEOPLE_ADMINS] : ['super_admin', 'auditor'],
          responses: { 200: { description: 'the setting', schema: settingSchemas[name], headers: { ETag: 'the version, for If-Match' } } },
          handle: async () => {
            const { value, version } = await settings.read(name);
            return new Reply(200, value, { etag: etag(version) });
          },
        }),
        operation({
          id: settingOperationId('put', name),
          method: 'put',
          path: `/settings/${name}`,
          tag,
          summary: `Replace the ${name} setting`,
          description: 'Send If-Match with the ETag from GET so that a change made meanwhile by someone else is not overwritten.',
          roles: ['super_admin'],
          ifMatch: true,
          body: settingSchemas[name],
          responses: {
            200: { description: 'saved', schema: settingSchemas[name], headers: { ETag: 'the new version' } },
            412: { description: 'the setting changed since it was read' },
          },
          handle: async (ctx, { body }) => {
            check(name, body);
            const saved = await settings.write(name, body as never, ifMatchVersion(ctx));
            if (!saved) throw new AppError(412, 'precondition_failed', 'the setting changed since it was read', 'If-Match');
            await queries.audit.insert({ action: `settings.${name.replace(/-/g, '_')}`, outcome: 'success', ...actorOf(ctx), details: { value: body, version: saved.version } });
            return new Reply(200, saved.value, { etag: etag(saved.version) });
          },
        }),
      ]),
  ];
}
