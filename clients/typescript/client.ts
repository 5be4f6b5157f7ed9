/**
 * A small typed client for the Task API, on `fetch` alone.
 *
 * Every type comes from `schema.d.ts`, which openapi-typescript generates from the server's
 * /openapi.json (`npm run generate`; tests/test_typescript_client.py regenerates it from the app
 * and type-checks this file). A contract change that breaks this client, such as a renamed
 * field, a removed header or a changed type, then fails the test suite instead of a browser.
 */
import type { components, paths } from "./schema";

type Schemas = components["schemas"];
export type Task = Schemas["TaskRead"];
export type TaskList = Schemas["ListRead"];
export type Priority = Schemas["Priority"];
export type Problem = Schemas["Problem"];

type ListTasksOp = paths["/api/{user_id}/tasks"]["get"];
type CreateOp = paths["/api/{user_id}/tasks"]["post"];
type GetOp = paths["/api/{user_id}/tasks/{task_id}"]["get"];
type UpdateOp = paths["/api/{user_id}/tasks/{task_id}"]["put"];
type DeleteOp = paths["/api/{user_id}/tasks/{task_id}"]["delete"];
type CompleteOp = paths["/api/{user_id}/tasks/{task_id}/complete"]["patch"];
type ListListsOp = paths["/api/{user_id}/lists"]["get"];
type CreateListOp = paths["/api/{user_id}/lists"]["post"];
type GetListOp = paths["/api/{user_id}/lists/{list_id}"]["get"];
type RenameListOp = paths["/api/{user_id}/lists/{list_id}"]["put"];
type DeleteListOp = paths["/api/{user_id}/lists/{list_id}"]["delete"];

/** The filters, order and page of `GET /api/{user_id}/tasks`. */
export type ListQuery = NonNullable<ListTasksOp["parameters"]["query"]>;
export type TaskCreate = CreateOp["requestBody"]["content"]["application/json"];
export type TaskUpdate = UpdateOp["requestBody"]["content"]["application/json"];
export type TaskCompletion = NonNullable<NonNullable<CompleteOp["requestBody"]>["content"]["application/json"]>;
/** The page of `GET /api/{user_id}/lists`. */
export type ListsQuery = NonNullable<ListListsOp["parameters"]["query"]>;
/** `{ name }`: the body of both creating and renaming a list. */
export type ListWrite = CreateListOp["requestBody"]["content"]["application/json"];
/** `{ user_id }`: the owner, which must equal the token's `sub`. */
export type OwnerPath = ListTasksOp["parameters"]["path"];
/** `{ user_id, task_id }`. */
export type TaskPath = GetOp["parameters"]["path"];
/** `{ user_id, list_id }`. */
export type ListPath = GetListOp["parameters"]["path"];

export interface ClientConfig {
    /** Where the API is served, e.g. `http://127.0.0.1:8000`. */
    baseUrl: string;
    /** A JWT whose `sub` equals the `user_id` of every path. */
    token: string;
}

/** What every failed call throws: the server's RFC 9457 problem details. */
export class ProblemError extends Error {
    readonly problem: Problem;

    constructor(problem: Problem) {
        super(`${problem.status} ${problem.title}: ${problem.detail}`);
        this.name = "ProblemError";
        this.problem = problem;
    }
}

/** The `ETag` of a task or a list, to send back in `If-Match` or `If-None-Match`: its version, quoted. */
export function etagOf(item: Task | TaskList): string {
    return `"${item.version}"`;
}

export interface TaskPage {
    tasks: ListTasksOp["responses"][200]["content"]["application/json"];
    /** Pass it back as `cursor` (with the same `sort`) for the next page; null on the last one. */
    nextCursor: ListQuery["cursor"];
}

/**
 * `GET /api/{user_id}/tasks`: one page, newest first unless `sort` says otherwise. Filters
 * combine; `priority` matches any of its values, `tag` all of them.
 */
export async function listTasks(config: ClientConfig, path: OwnerPath, query: ListQuery = {}): Promise<TaskPage> {
    const response = await send(config, "GET", `${tasksUrl(path)}${search(query)}`, [200]);
    const tasks: TaskPage["tasks"] = await response.json();
    return { tasks, nextCursor: nextCursor(response, config.baseUrl) };
}

/** `POST /api/{user_id}/tasks`. With an `Idempotency-Key`, retrying creates the task only once. */
export async function createTask(
    config: ClientConfig,
    path: OwnerPath,
    body: TaskCreate,
    headers: NonNullable<CreateOp["parameters"]["header"]> = {},
): Promise<CreateOp["responses"][201]["content"]["application/json"]> {
    const response = await send(config, "POST", tasksUrl(path), [201], { body, headers });
    return response.json();
}

/** `GET /api/{user_id}/tasks/{task_id}`; with `If-None-Match`, null means the copy is still current. */
export async function getTask(config: ClientConfig, path: TaskPath): Promise<Task>;
export async function getTask(
    config: ClientConfig,
    path: TaskPath,
    headers: NonNullable<GetOp["parameters"]["header"]>,
): Promise<Task | null>;
export async function getTask(
    config: ClientConfig,
    path: TaskPath,
    headers: NonNullable<GetOp["parameters"]["header"]> = {},
): Promise<GetOp["responses"][200]["content"]["application/json"] | null> {
    const response = await send(config, "GET", taskUrl(path), [200, 304], { headers });
    return response.status === 304 ? null : response.json();
}

/** `PUT /api/{user_id}/tasks/{task_id}`; with `If-Match`, a task changed meanwhile is a 412. */
export async function updateTask(
    config: ClientConfig,
    path: UpdateOp["parameters"]["path"],
    body: TaskUpdate,
    headers: NonNullable<UpdateOp["parameters"]["header"]> = {},
): Promise<UpdateOp["responses"][200]["content"]["application/json"]> {
    const response = await send(config, "PUT", taskUrl(path), [200], { body, headers });
    return response.json();
}

/** `PATCH /api/{user_id}/tasks/{task_id}/complete`: sets `completed`, or toggles it without a body. */
export async function completeTask(
    config: ClientConfig,
    path: CompleteOp["parameters"]["path"],
    body?: TaskCompletion,
    headers: NonNullable<CompleteOp["parameters"]["header"]> = {},
): Promise<CompleteOp["responses"][200]["content"]["application/json"]> {
    const response = await send(config, "PATCH", `${taskUrl(path)}/complete`, [200], { body, headers });
    return response.json();
}

/** `DELETE /api/{user_id}/tasks/{task_id}`; with `If-Match`, a task changed meanwhile is a 412. */
export async function deleteTask(
    config: ClientConfig,
    path: DeleteOp["parameters"]["path"],
    headers: NonNullable<DeleteOp["parameters"]["header"]> = {},
): Promise<void> {
    await send(config, "DELETE", taskUrl(path), [204], { headers });
}

export interface ListPage {
    lists: ListListsOp["responses"][200]["content"]["application/json"];
    /** Pass it back as `cursor` for the next page; null on the last one. */
    nextCursor: ListsQuery["cursor"];
}

/** `GET /api/{user_id}/lists`: one page, oldest first, each list with its task counts. */
export async function listLists(config: ClientConfig, path: OwnerPath, query: ListsQuery = {}): Promise<ListPage> {
    const response = await send(config, "GET", `${listsUrl(path)}${search(query)}`, [200]);
    const lists: ListPage["lists"] = await response.json();
    return { lists, nextCursor: nextCursor(response, config.baseUrl) };
}

/** `POST /api/{user_id}/lists`; a name the caller already uses (ignoring case) is a 409. */
export async function createList(
    config: ClientConfig,
    path: OwnerPath,
    body: ListWrite,
    headers: NonNullable<CreateListOp["parameters"]["header"]> = {},
): Promise<CreateListOp["responses"][201]["content"]["application/json"]> {
    const response = await send(config, "POST", listsUrl(path), [201], { body, headers });
    return response.json();
}

/** `GET /api/{user_id}/lists/{list_id}`: its counts are always current, so there is no 304. */
export async function getList(
    config: ClientConfig,
    path: ListPath,
): Promise<GetListOp["responses"][200]["content"]["application/json"]> {
    const response = await send(config, "GET", listUrl(path), [200]);
    return response.json();
}

/** `PUT /api/{user_id}/lists/{list_id}`; with `If-Match`, a list renamed meanwhile is a 412. */
export async function renameList(
    config: ClientConfig,
    path: RenameListOp["parameters"]["path"],
    body: ListWrite,
    headers: NonNullable<RenameListOp["parameters"]["header"]> = {},
): Promise<RenameListOp["responses"][200]["content"]["application/json"]> {
    const response = await send(config, "PUT", listUrl(path), [200], { body, headers });
    return response.json();
}

/** `DELETE /api/{user_id}/lists/{list_id}`: its tasks stay, in no list. */
export async function deleteList(
    config: ClientConfig,
    path: DeleteListOp["parameters"]["path"],
    headers: NonNullable<DeleteListOp["parameters"]["header"]> = {},
): Promise<void> {
    await send(config, "DELETE", listUrl(path), [204], { headers });
}

function tasksUrl(path: OwnerPath): string {
    return `/api/${encodeURIComponent(path.user_id)}/tasks`;
}

function taskUrl(path: TaskPath): string {
    return `${tasksUrl(path)}/${path.task_id}`;
}

function listsUrl(path: OwnerPath): string {
    return `/api/${encodeURIComponent(path.user_id)}/lists`;
}

function listUrl(path: ListPath): string {
    return `${listsUrl(path)}/${path.list_id}`;
}

/** `?a=1&b=2`, or nothing; a repeatable parameter (`priority`, `tag`) once per value. */
function search(query: ListQuery | ListsQuery): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
        for (const item of Array.isArray(value) ? value : [value]) {
            if (item !== undefined && item !== null) params.append(name, String(item));
        }
    }
    const text = params.toString();
    return text ? `?${text}` : "";
}

async function send(
    config: ClientConfig,
    method: string,
    url: string,
    expected: number[],
    { body, headers = {} }: { body?: unknown; headers?: Record<string, string | null | undefined> } = {},
): Promise<Response> {
    const sent = new Headers({ Authorization: `Bearer ${config.token}` });
    for (const [name, value] of Object.entries(headers)) {
        if (value !== undefined && value !== null) sent.set(name, value);
    }
    if (body !== undefined) sent.set("Content-Type", "application/json");
    const response = await fetch(new URL(url, config.baseUrl), {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!expected.includes(response.status)) throw new ProblemError(await problemOf(response));
    return response;
}

async function problemOf(response: Response): Promise<Problem> {
    const text = await response.text();
    if (response.headers.get("Content-Type")?.startsWith("application/problem+json")) {
        return JSON.parse(text) as Problem;
    }
    // Not from the API itself (a proxy, a gateway): the same shape, so callers handle one type.
    return { type: "about:blank", title: response.statusText, status: response.status, detail: text.slice(0, 500) };
}

function nextCursor(response: Response, baseUrl: string): string | null {
    const next = /^<([^>]+)>;\s*rel="next"$/.exec(response.headers.get("Link") ?? "");
    return next?.[1] === undefined ? null : new URL(next[1], baseUrl).searchParams.get("cursor");
}

// --- The contract, checked by the compiler ------------------------------------------------

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

export const contract = {
    completedIsBoolean: true satisfies Equal<Task["completed"], boolean>,
    descriptionIsNullable: true satisfies Equal<Task["description"], string | null>,
    versionIsANumber: true satisfies Equal<Task["version"], number>,
    statusFilterIsTheEnum: true satisfies Equal<ListQuery["status"], Schemas["TaskStatus"] | undefined>,
    staleIfMatchIsAProblem: true satisfies Equal<UpdateOp["responses"][412]["content"]["application/problem+json"], Problem>,
    notModifiedHasNoBody: true satisfies Equal<GetOp["responses"][304]["content"], undefined>,
    priorityIsFourNames: true satisfies Equal<Priority, "none" | "low" | "medium" | "high">,
    taskPriorityIsAlwaysThere: true satisfies Equal<Task["priority"], Priority>,
    dueAtIsNullable: true satisfies Equal<Task["due_at"], string | null>,
    completedAtIsNullable: true satisfies Equal<Task["completed_at"], string | null>,
    tagsAreStrings: true satisfies Equal<Task["tags"], string[]>,
    listIdIsNullable: true satisfies Equal<Task["list_id"], number | null>,
    completedAtIsReadOnly: true satisfies Equal<"completed_at" extends keyof TaskCreate | keyof TaskUpdate ? 1 : 0, 0>,
    listFilterTakesNone: true satisfies Equal<ListQuery["list_id"], number | "none" | null | undefined>,
    priorityFilterRepeats: true satisfies Equal<ListQuery["priority"], Priority[] | undefined>,
    tagFilterRepeats: true satisfies Equal<ListQuery["tag"], string[] | undefined>,
    overdueIsBoolean: true satisfies Equal<ListQuery["overdue"], boolean | null | undefined>,
    sortsByDueAndPriority: true satisfies Equal<
        Schemas["TaskSort"],
        "created" | "-created" | "updated" | "-updated" | "title" | "-title" | "due" | "-due" | "priority" | "-priority"
    >,
    listCountsAreNumbers: true satisfies Equal<[TaskList["task_count"], TaskList["open_count"]], [number, number]>,
    listBodyIsItsName: true satisfies Equal<ListWrite, { name: string }>,
    takenNameIsAProblem: true satisfies Equal<CreateListOp["responses"][409]["content"]["application/problem+json"], Problem>,
    staleListIsAProblem: true satisfies Equal<RenameListOp["responses"][412]["content"]["application/problem+json"], Problem>,
    deletedListHasNoBody: true satisfies Equal<DeleteListOp["responses"][204]["content"], undefined>,
};

/**
 * Calls all eleven routes, so the compiler checks each against the contract. A task is created
 * with every writable field and listed with every filter: one the document gains and the
 * client does not know yet is a compile error here.
 */
export async function demo(config: ClientConfig, userId: string): Promise<void> {
    const owner = { user_id: userId };
    const groceries = await createList(config, owner, { name: "Groceries" }, { "Idempotency-Key": crypto.randomUUID() });
    const listPath = { user_id: userId, list_id: groceries.id };

    const everyField = {
        title: "Buy milk",
        description: "2 litres, oat",
        completed: false,
        list_id: groceries.id,
        due_at: "2026-11-25T18:00:00+01:00",
        priority: "high",
        tags: ["errands", "Shop"],
    } satisfies Required<TaskCreate>;
    const created = await createTask(config, owner, everyField, { "Idempotency-Key": crypto.randomUUID() });
    const path = { user_id: userId, task_id: created.id };
    console.log(created.due_at?.endsWith("Z"), created.completed_at === null, created.tags.join(", "));

    const everyFilter = {
        status: "pending",
        sort: "due",
        q: "milk",
        limit: 10,
        cursor: null,
        list_id: groceries.id,
        priority: ["medium", "high"],
        tag: ["errands"],
        due_before: "2026-12-01T00:00:00Z",
        due_after: null,
        overdue: false,
    } satisfies Required<ListQuery>;
    const page = await listTasks(config, owner, everyFilter);
    if (page.nextCursor !== null) await listTasks(config, owner, { ...everyFilter, cursor: page.nextCursor });
    await listTasks(config, owner, { list_id: "none", sort: "-priority", overdue: true });

    const current = (await getTask(config, path, { "If-None-Match": etagOf(created) })) ?? (await getTask(config, path));
    const updated = await updateTask(
        config,
        path,
        { title: "Buy oat milk", due_at: null, priority: "low", tags: [] },
        { "If-Match": etagOf(current) },
    );
    const done = await completeTask(config, path, { completed: true }, { "If-Match": etagOf(updated) });
    const toggled = await completeTask(config, path);
    console.log(done.completed, done.completed_at !== null, toggled.completed, toggled.version > done.version);

    const counted = await getList(config, listPath);
    console.log(`${counted.name}: ${counted.open_count} open of ${counted.task_count}`);
    const renamed = await renameList(config, listPath, { name: "Shopping" }, { "If-Match": etagOf(counted) });
    let lists = await listLists(config, owner, { limit: 100 });
    while (lists.nextCursor !== null) lists = await listLists(config, owner, { cursor: lists.nextCursor });
    await deleteList(config, listPath, { "If-Match": etagOf(renamed) });
    const unlisted = await getTask(config, path);
    console.log(unlisted.list_id === null);
    await deleteTask(config, path, { "If-Match": etagOf(unlisted) });

    try {
        await getTask(config, path);
    } catch (error) {
        if (!(error instanceof ProblemError) || error.problem.status !== 404) throw error;
    }
}

/**
 * Requests the contract forbids, which must not compile (an unused @ts-expect-error fails too).
 * Only the compiler reads this function: calling it would send them.
 */
export function forbiddenByTheContract(config: ClientConfig, path: TaskPath, listPath: ListPath): void {
    const owner = { user_id: path.user_id };
    // @ts-expect-error: a misspelt field (the server would answer 422)
    void createTask(config, owner, { title: "x", titel: "x" });
    // @ts-expect-error: the owner comes from the token, never from the body
    void updateTask(config, path, { title: "x", user_id: "bob" });
    // @ts-expect-error: `completed` is a boolean
    void completeTask(config, path, { completed: "yes" });
    // @ts-expect-error: not a status the list knows
    void listTasks(config, owner, { status: "done" });
    // @ts-expect-error: task ids are numbers
    void getTask(config, { user_id: path.user_id, task_id: "42" });
    // @ts-expect-error: not one of the four priorities
    void createTask(config, owner, { title: "x", priority: "urgent" });
    // @ts-expect-error: tags are a list, not one comma-separated string
    void createTask(config, owner, { title: "x", tags: "errands, shop" });
    // @ts-expect-error: list ids are numbers
    void createTask(config, owner, { title: "x", list_id: "7" });
    // @ts-expect-error: `completed_at` is the server's, set by completing the task
    void updateTask(config, path, { title: "x", completed_at: "2026-11-25T18:00:00Z" });
    // @ts-expect-error: repeatable filters take lists
    void listTasks(config, owner, { priority: "high" });
    // @ts-expect-error: the sort is by `due`, not by the field's name
    void listTasks(config, owner, { sort: "due_at" });
    // @ts-expect-error: `overdue` is a boolean
    void listTasks(config, owner, { overdue: "yes" });
    // @ts-expect-error: a list has a name, not a title
    void createList(config, owner, { title: "Groceries" });
    // @ts-expect-error: the counts are the server's
    void renameList(config, listPath, { name: "Shopping", task_count: 0 });
    // @ts-expect-error: a list's counts change without a new version, so there is no If-None-Match
    void getList(config, listPath, { "If-None-Match": '"1"' });
}
