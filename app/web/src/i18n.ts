// The interface in English and Russian: the messages, the choice of
// language (saved, else the browser's), plurals and dates in the user's
// locale.

export type Lang = "en" | "ru";
export const LANGS: readonly Lang[] = ["en", "ru"];

const LANG_KEY = "metachat.lang";

/** Plural forms, chosen by `Intl.PluralRules` of the language. */
type Plural = Partial<Record<Intl.LDMLPluralRule, string>> & { other: string };

const en = {
  "app.name": "MetaChat",
  "app.tagline": "A diary that reads your mood and finds people who feel alike.",
  "lang.label": "Language",
  "nav.main": "Main",
  "nav.diary": "Diary",
  "nav.timeline": "Mood timeline",
  "nav.matches": "People like you",
  "nav.account": "Account",
  "nav.logout": "Log out",
  "nav.skip": "Skip to content",
  "auth.login": "Log in",
  "auth.signup": "Sign up",
  "auth.email": "Email",
  "auth.password": "Password",
  "auth.password.hint": "At least 8 characters.",
  "auth.display_name": "Your name, as others see it",
  "auth.to_signup": "New here? Create an account",
  "auth.to_login": "Already have an account? Log in",
  "auth.working": "One moment…",
  "diary.new": "New entry",
  "diary.text": "What happened today?",
  "diary.save": "Save entry",
  "diary.saving": "Saving…",
  "diary.saved": "Saved. Your mood will appear in a moment.",
  "diary.bytes": "{n} of {max} bytes",
  "diary.list": "Your entries",
  "diary.empty": "No entries yet. Write your first one above.",
  "diary.more": "Show older entries",
  "diary.loading": "Loading…",
  "diary.edit": "Edit",
  "diary.edit.label": "Edit the entry",
  "diary.delete": "Delete",
  "diary.delete.confirm": "Delete this entry? It cannot be brought back.",
  "diary.cancel": "Cancel",
  "diary.update": "Save changes",
  "diary.edited": "edited {date}",
  "diary.deleted": "Entry deleted.",
  "diary.reload": "Reload the entry",
  "mood.pending": "Reading the mood…",
  "mood.label": "Mood",
  "mood.positive": "positive",
  "mood.neutral": "neutral",
  "mood.negative": "negative",
  "mood.summary": "{valence} · mostly {emotion}",
  "mood.sure": "{p}% sure",
  "emotion.joy": "joy",
  "emotion.sadness": "sadness",
  "emotion.anger": "anger",
  "emotion.fear": "fear",
  "emotion.love": "love",
  "emotion.surprise": "surprise",
  "emotion.neutral": "calm",
  "timeline.title": "Your mood over time",
  "timeline.range": "Range",
  "timeline.range.7": "Last 7 days",
  "timeline.range.30": "Last 30 days",
  "timeline.range.90": "Last 90 days",
  "timeline.range.365": "Last year",
  "timeline.range.custom": "Choose dates",
  "timeline.from": "From",
  "timeline.to": "To",
  "timeline.valence": "Mood per day (−1 sad … +1 happy)",
  "timeline.emotions": "Emotions per day (share of entries)",
  "timeline.empty": "No analysed entries in this range yet.",
  "timeline.days": { one: "{n} day with entries", other: "{n} days with entries" } as Plural,
  "timeline.table": "The same data as a table",
  "timeline.date": "Date",
  "timeline.entries": "Entries",
  "timeline.mean": "Mood",
  "timeline.dominant": "Main emotion",
  "matches.title": "People who feel alike",
  "matches.intro":
    "We compare the moods and themes of your diary with other people's. Nobody sees your text.",
  "matches.empty":
    "No matches yet. Matches appear when you and others have written a few entries.",
  "matches.strength.high": "Very close to you",
  "matches.strength.mid": "Quite close to you",
  "matches.strength.low": "Somewhat close to you",
  "matches.shared": "You both often feel {list}.",
  "matches.shared.none": "You rarely feel the same emotions.",
  "matches.theme.high": "You write about very similar things.",
  "matches.theme.mid": "You write about some of the same things.",
  "matches.theme.low": "You write about different things.",
  "matches.mood.high": "Your moods over time are very much alike.",
  "matches.mood.mid": "Your moods over time are somewhat alike.",
  "matches.mood.low": "Your moods over time differ.",
  "list.and": "and",
  "account.title": "Your account",
  "account.email": "Email",
  "account.name": "Name",
  "account.erase": "Delete my account",
  "account.erase.title": "Delete your account for good?",
  "account.erase.what": "This destroys, at once and for good:",
  "account.erase.entries": "every diary entry you wrote, and their moods",
  "account.erase.timeline": "your mood timeline",
  "account.erase.profile": "your email address, your name and your password",
  "account.erase.matches": "your place in other people's matches",
  "account.erase.sessions": "every session, on every device",
  "account.erase.final":
    "Nobody can undo it, not even us: the key your data was encrypted with is destroyed.",
  "account.erase.type": "Type your email address to confirm",
  "account.erase.confirm": "Delete everything",
  "account.erase.mismatch": "That is not your email address.",
  "account.erased.title": "Your account is deleted",
  "account.erased.text": "Everything you wrote is gone. Thank you for trying MetaChat.",
  "account.erased.again": "Back to the start",
  "error.network": "Cannot reach the server. Check your connection and try again.",
  "error.session": "Your session has expired. Please log in again.",
  "error.credentials": "Wrong email or password.",
  "error.email_taken": "This email address already has an account. Log in instead.",
  "error.rate_limited": "Too many attempts. Try again in {s} seconds.",
  "error.busy": "The server is busy. Try again in {s} seconds.",
  "error.unavailable": "The server is not available right now. Try again in a moment.",
  "error.not_caught_up": "Your latest change is still being processed. Try again in a moment.",
  "error.too_large": "The entry is too long: at most {max} bytes.",
  "error.empty": "Write something first: the entry is empty.",
  "error.conflict":
    "This entry was changed in another window or device. Reload it to see the latest version.",
  "error.entry_deleted": "This entry was deleted in another window or device.",
  "error.not_found": "That was not found. It may have been deleted.",
  "error.field.email": "Enter a valid email address.",
  "error.field.password": "The password needs 8 to 256 bytes.",
  "error.field.display_name":
    "Choose a name of 1 to 64 characters with at least one letter or digit, without mixing alphabets in a word.",
  "error.field": "Check the field “{field}”.",
  "error.internal": "Something went wrong on our side. Try again later.",
  "error.unknown": "Something went wrong ({code}).",
  "error.dismiss": "Dismiss",
};

export type Key = keyof typeof en;
type Messages = Record<Key, string | Plural>;

const ru: Messages = {
  "app.name": "MetaChat",
  "app.tagline": "Дневник, который понимает настроение и находит людей, чувствующих похоже.",
  "lang.label": "Язык",
  "nav.main": "Главное",
  "nav.diary": "Дневник",
  "nav.timeline": "Настроение",
  "nav.matches": "Похожие люди",
  "nav.account": "Аккаунт",
  "nav.logout": "Выйти",
  "nav.skip": "К содержимому",
  "auth.login": "Войти",
  "auth.signup": "Зарегистрироваться",
  "auth.email": "Электронная почта",
  "auth.password": "Пароль",
  "auth.password.hint": "Не меньше 8 символов.",
  "auth.display_name": "Ваше имя, как его видят другие",
  "auth.to_signup": "Впервые здесь? Создайте аккаунт",
  "auth.to_login": "Уже есть аккаунт? Войдите",
  "auth.working": "Секунду…",
  "diary.new": "Новая запись",
  "diary.text": "Что случилось сегодня?",
  "diary.save": "Сохранить запись",
  "diary.saving": "Сохраняем…",
  "diary.saved": "Сохранено. Настроение появится через мгновение.",
  "diary.bytes": "{n} из {max} байт",
  "diary.list": "Ваши записи",
  "diary.empty": "Записей пока нет. Напишите первую выше.",
  "diary.more": "Показать более ранние записи",
  "diary.loading": "Загрузка…",
  "diary.edit": "Изменить",
  "diary.edit.label": "Изменить запись",
  "diary.delete": "Удалить",
  "diary.delete.confirm": "Удалить эту запись? Вернуть её будет нельзя.",
  "diary.cancel": "Отмена",
  "diary.update": "Сохранить изменения",
  "diary.edited": "изменено {date}",
  "diary.deleted": "Запись удалена.",
  "diary.reload": "Загрузить запись заново",
  "mood.pending": "Определяем настроение…",
  "mood.label": "Настроение",
  "mood.positive": "хорошее",
  "mood.neutral": "ровное",
  "mood.negative": "плохое",
  "mood.summary": "{valence} · больше всего: {emotion}",
  "mood.sure": "уверенность {p}%",
  "emotion.joy": "радость",
  "emotion.sadness": "грусть",
  "emotion.anger": "злость",
  "emotion.fear": "страх",
  "emotion.love": "любовь",
  "emotion.surprise": "удивление",
  "emotion.neutral": "спокойствие",
  "timeline.title": "Ваше настроение во времени",
  "timeline.range": "Период",
  "timeline.range.7": "Последние 7 дней",
  "timeline.range.30": "Последние 30 дней",
  "timeline.range.90": "Последние 90 дней",
  "timeline.range.365": "Последний год",
  "timeline.range.custom": "Выбрать даты",
  "timeline.from": "С",
  "timeline.to": "По",
  "timeline.valence": "Настроение по дням (−1 грустно … +1 радостно)",
  "timeline.emotions": "Эмоции по дням (доля записей)",
  "timeline.empty": "В этом периоде пока нет проанализированных записей.",
  "timeline.days": {
    one: "{n} день с записями",
    few: "{n} дня с записями",
    many: "{n} дней с записями",
    other: "{n} дня с записями",
  },
  "timeline.table": "Те же данные таблицей",
  "timeline.date": "Дата",
  "timeline.entries": "Записей",
  "timeline.mean": "Настроение",
  "timeline.dominant": "Главная эмоция",
  "matches.title": "Люди, которые чувствуют похоже",
  "matches.intro":
    "Мы сравниваем настроение и темы вашего дневника с чужими. Ваш текст никто не видит.",
  "matches.empty":
    "Пока никого. Совпадения появятся, когда вы и другие напишете несколько записей.",
  "matches.strength.high": "Очень близок вам",
  "matches.strength.mid": "Довольно близок вам",
  "matches.strength.low": "Отчасти близок вам",
  "matches.shared": "Вы оба часто чувствуете {list}.",
  "matches.shared.none": "Вы редко чувствуете одно и то же.",
  "matches.theme.high": "Вы пишете об очень похожем.",
  "matches.theme.mid": "Вы отчасти пишете об одном и том же.",
  "matches.theme.low": "Вы пишете о разном.",
  "matches.mood.high": "Ваше настроение меняется очень похоже.",
  "matches.mood.mid": "Ваше настроение меняется отчасти похоже.",
  "matches.mood.low": "Ваше настроение меняется по-разному.",
  "list.and": "и",
  "account.title": "Ваш аккаунт",
  "account.email": "Электронная почта",
  "account.name": "Имя",
  "account.erase": "Удалить аккаунт",
  "account.erase.title": "Удалить аккаунт навсегда?",
  "account.erase.what": "Сразу и навсегда будет уничтожено:",
  "account.erase.entries": "все ваши записи и их настроение",
  "account.erase.timeline": "ваша история настроения",
  "account.erase.profile": "ваш адрес почты, имя и пароль",
  "account.erase.matches": "ваше место в чужих совпадениях",
  "account.erase.sessions": "все сеансы на всех устройствах",
  "account.erase.final":
    "Отменить это не сможет никто, даже мы: ключ, которым зашифрованы ваши данные, уничтожается.",
  "account.erase.type": "Введите свой адрес почты для подтверждения",
  "account.erase.confirm": "Удалить всё",
  "account.erase.mismatch": "Это не ваш адрес почты.",
  "account.erased.title": "Аккаунт удалён",
  "account.erased.text": "Всё, что вы написали, уничтожено. Спасибо, что попробовали MetaChat.",
  "account.erased.again": "На главную",
  "error.network": "Нет связи с сервером. Проверьте подключение и попробуйте снова.",
  "error.session": "Сеанс истёк. Войдите снова.",
  "error.credentials": "Неверная почта или пароль.",
  "error.email_taken": "На этот адрес уже есть аккаунт. Войдите.",
  "error.rate_limited": "Слишком много попыток. Попробуйте через {s} с.",
  "error.busy": "Сервер занят. Попробуйте через {s} с.",
  "error.unavailable": "Сервер сейчас недоступен. Попробуйте чуть позже.",
  "error.not_caught_up": "Последнее изменение ещё обрабатывается. Попробуйте чуть позже.",
  "error.too_large": "Запись слишком длинная: не больше {max} байт.",
  "error.empty": "Сначала напишите что-нибудь: запись пустая.",
  "error.conflict":
    "Эту запись изменили в другом окне или на другом устройстве. Загрузите её заново.",
  "error.entry_deleted": "Эту запись удалили в другом окне или на другом устройстве.",
  "error.not_found": "Не найдено. Возможно, это удалили.",
  "error.field.email": "Введите правильный адрес почты.",
  "error.field.password": "Пароль должен быть от 8 до 256 байт.",
  "error.field.display_name":
    "Имя: от 1 до 64 символов, хотя бы одна буква или цифра, без смешения алфавитов в слове.",
  "error.field": "Проверьте поле «{field}».",
  "error.internal": "У нас что-то сломалось. Попробуйте позже.",
  "error.unknown": "Что-то пошло не так ({code}).",
  "error.dismiss": "Закрыть",
};

const MESSAGES: Record<Lang, Messages> = { en, ru };

/** The saved language, else the first of the browser's we speak, else English. */
export function initialLang(): Lang {
  const saved = safeGet(LANG_KEY);
  if (saved === "en" || saved === "ru") return saved;
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = tag.toLowerCase().split("-")[0];
    if (base === "ru" || base === "en") return base;
  }
  return "en";
}

export function saveLang(lang: Lang): void {
  try {
    localStorage.setItem(LANG_KEY, lang);
  } catch {
    // Storage may be off (private mode): the choice lasts this page only.
  }
}

function safeGet(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

/**
 * The locale for numbers and dates: the browser's own tag for this
 * language when it has one (`en-GB` keeps day-month order), else the bare
 * language.
 */
export function localeFor(lang: Lang): string {
  for (const tag of navigator.languages ?? [navigator.language]) {
    if (tag.toLowerCase().split("-")[0] === lang) return tag;
  }
  return lang;
}

export type Translate = ((key: Key, params?: Record<string, string | number>) => string) & {
  lang: Lang;
  locale: string;
};

/** The message function of a language. `{name}` in a message is replaced by `params.name`. */
export function translator(lang: Lang): Translate {
  const locale = localeFor(lang);
  const rules = new Intl.PluralRules(lang);
  const numbers = new Intl.NumberFormat(locale);
  const fn = (key: Key, params: Record<string, string | number> = {}): string => {
    const msg = MESSAGES[lang][key] ?? en[key];
    let text: string;
    if (typeof msg === "string") {
      text = msg;
    } else {
      const n = Number(params.n ?? 0);
      text = msg[rules.select(n)] ?? msg.other;
    }
    return text.replace(/\{(\w+)\}/g, (_, name: string) => {
      const value = params[name];
      if (value === undefined) return `{${name}}`;
      return typeof value === "number" ? numbers.format(value) : value;
    });
  };
  return Object.assign(fn, { lang, locale });
}

/** A list in words: "joy, love and surprise". */
export function wordList(t: Translate, items: string[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} ${t("list.and")} ${items[items.length - 1]}`;
}

/** An RFC 3339 time as a date and time in the user's locale. */
export function formatDateTime(t: Translate, rfc3339: string): string {
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return rfc3339;
  return new Intl.DateTimeFormat(t.locale, { dateStyle: "medium", timeStyle: "short" }).format(date);
}

/** A `YYYY-MM-DD` UTC day as a short date in the user's locale. */
export function formatDay(t: Translate, day: string): string {
  const date = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) return day;
  return new Intl.DateTimeFormat(t.locale, { day: "numeric", month: "short", timeZone: "UTC" }).format(
    date,
  );
}
