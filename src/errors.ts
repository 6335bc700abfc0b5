/**
 * An error a user may be told about: an HTTP status, a stable machine code (also the i18n key of its message)
 * and the field at fault, if any. Anything else that reaches the error handler is a 500 shown generically.
 */
export class AppError extends Error {
  readonly expose = true;
  constructor(
    readonly status: number,
    readonly code: string,
    message: string = code,
    readonly field?: string,
    /** Words from elsewhere that help the user, e.g. the SMS provider's reason for refusing a number. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'AppError';
  }
}
