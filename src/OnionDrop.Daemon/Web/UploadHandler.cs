using System.Buffers;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Sealing;
using OnionDrop.Storage;

namespace OnionDrop.Daemon.Web;

/// <summary>The journalists' public keys, parsed once (the options validator has already checked them).</summary>
public sealed class SealingRecipients(OnionDropOptions options)
{
    public IReadOnlyList<RecipientPublicKey> Keys { get; } = options.Recipients.Select(r => RecipientPublicKey.Parse(r.Trim())).ToList();
}

/// <summary>What the receipt page may say: the reference, how many files, how big, whether there was a message.</summary>
/// <param name="Repeat">the same form sent again: its first submission's receipt, nothing new stored</param>
public sealed record ReceivedSubmission(string Reference, int Files, long Bytes, bool HasMessage, bool Repeat = false);

/// <summary>
/// Takes the form's POST: reads the multipart body as a stream, feeds each file straight into a
/// <see cref="SubmissionSealer"/> writing into the store, and commits only once the whole request has
/// arrived. Any refusal or failure disposes the uncommitted writer, which deletes every piece of it.
/// Nothing here logs anything about the request itself.
/// </summary>
public sealed partial class UploadHandler(ISealedBlobStore store, SealingRecipients recipients, RecentSubmissions recent, OnionDropOptions options,
    ILogger<UploadHandler> log)
{
    /// <summary>The form's fields (Pages.Form): its file input, its message box, and the hidden one-time token.</summary>
    public const string FilesField = "files", MessageField = "message", OnceField = "once";

    private const int ChunkBytes = 64 * 1024;
    private const int MaxBoundaryLength = 200;

    /// <summary>Parts allowed beyond MaxFiles: the message, the empty file input a browser sends, a few spares.</summary>
    private const int SpareParts = 8;

    /// <summary>Uploads in progress may not pass <see cref="OnionDropOptions.MaxConcurrentUploads"/>: the memory they hold is bounded.</summary>
    private readonly SemaphoreSlim _slots = new(options.MaxConcurrentUploads);

    /// <summary>1 from the first upload a full disk refuses until a commit finds the disk no longer low: logged once, not per upload.</summary>
    private int _diskFull;

    public async Task<ReceivedSubmission> ReceiveAsync(HttpContext context)
    {
        if (!_slots.Wait(0)) throw UploadRefused.Busy();
        // Not pooled: a read still in flight when a write fails may land in it after we have left.
        var buffer = new byte[ChunkBytes];
        try { return await ReceiveOneAsync(context, buffer); }
        finally
        {
            _slots.Release();
            CryptographicOperations.ZeroMemory(buffer); // a source's bytes, not to be found in a snapshot of memory
        }
    }

    private async Task<ReceivedSubmission> ReceiveOneAsync(HttpContext context, byte[] buffer)
    {
        var request = context.Request;
        var boundary = BoundaryOf(request.ContentType);
        // Browsers always declare the length of a form; a chunked body (or one declaring both, a
        // smuggling pattern) has no business here.
        if (request.Headers.ContentLength is null || request.Headers.TransferEncoding.Count > 0)
            throw UploadRefused.LengthRequired();
        if (request.ContentLength > WebListeners.MaxRequestBodyBytes(options))
            throw UploadRefused.TooLarge(options.MaxSubmissionBytes);

        await using var body = new IdleTimeoutStream(request.Body, options.UploadIdleTimeout, options.MaxSubmissionBytes, context.RequestAborted);
        var reader = new MultipartReader(boundary, body, ChunkBytes) { HeadersCountLimit = 8, HeadersLengthLimit = 8 * 1024 };
        await using var writer = store.BeginSubmission();
        int files = 0, parts = 0;
        long bytes = 0;
        string? message = null, once = null;
        await using (var sealer = new SubmissionSealer(writer.Ciphertext, recipients.Keys))
        {
            while (await Parse(new ValueTask<MultipartSection?>(reader.ReadNextSectionAsync(context.RequestAborted))) is { } section)
            {
                if (++parts > options.MaxFiles + SpareParts) throw UploadRefused.TooManyFiles(options.MaxFiles);
                var part = FormPart.Parse(section.ContentDisposition) ?? throw UploadRefused.Malformed();

                if (part.FileName is { } fileName)
                {
                    var read = await Parse(section.Body.ReadAsync(buffer.AsMemory(0, ChunkBytes)));
                    if (read == 0 && fileName.Length == 0) continue; // the file input of a form sent with no file chosen
                    if (++files > options.MaxFiles) throw UploadRefused.TooManyFiles(options.MaxFiles);
                    await sealer.BeginFileAsync(fileName, ContentTypeOf(section), context.RequestAborted);
                    bytes = await SealFileAsync(section.Body, sealer, buffer, read, bytes, context.RequestAborted);
                    await sealer.EndFileAsync(context.RequestAborted);
                }
                else if (part.Name == MessageField && message is null)
                    message = await ReadMessageAsync(section.Body, buffer);
                else if (part.Name == OnceField && once is null)
                {
                    once = await ReadTokenAsync(section.Body, buffer);
                    // The same form sent again (it comes first in the form): read the rest and throw it away (the browser
                    // shows an answer only once it has sent everything), and answer with the first receipt. The writer,
                    // never committed, deletes what it holds.
                    if (once is not null && recent.Find(once) is { } stored)
                    {
                        while (await body.ReadAsync(buffer) > 0) { }
                        return stored with { Repeat = true };
                    }
                }
                else
                    await DrainAsync(section.Body, buffer, limit: 4 * 1024); // a field the form does not have
            }

            if (files == 0 && string.IsNullOrWhiteSpace(message)) throw UploadRefused.Empty(messages: options.MaxMessageChars > 0);
            // The whole request has arrived: from here on the submission is finished even if the
            // source's connection drops before the receipt is shown.
            await sealer.CompleteAsync(writer.Id, message ?? "", DateTimeOffset.UtcNow, CancellationToken.None);
        }
        // Sent again while the first was still on its way: that one's receipt, and this copy is deleted uncommitted.
        if (once is not null && await recent.ClaimAsync(once) is { } first) return first with { Repeat = true };
        try { await writer.CommitAsync(CancellationToken.None); }
        catch
        {
            if (once is not null) recent.Abandon(once);
            throw;
        }
        var received = new ReceivedSubmission(writer.Id, files, bytes, !string.IsNullOrWhiteSpace(message));
        if (once is not null) recent.Complete(once, received);
        NoteDiskSpace();
        return received;
    }

    /// <summary>The form's token, or null for anything else (a client without the form's field is served all the same).</summary>
    private static async Task<string?> ReadTokenAsync(Stream section, byte[] buffer)
    {
        var length = 0;
        int read;
        while ((read = await Parse(section.ReadAsync(buffer.AsMemory(length, ChunkBytes - length)))) > 0)
            if ((length += read) > 64) throw UploadRefused.Malformed();
        var token = Encoding.ASCII.GetString(buffer, 0, length);
        return RecentSubmissions.IsToken(token) ? token : null;
    }

    /// <summary>
    /// Seals one file part, starting with the <paramref name="firstRead"/> bytes already in
    /// <paramref name="first"/>. The next read from the network runs while the previous chunk is being
    /// sealed, so receiving and encrypting use both cores. Returns the submission's running byte count.
    /// </summary>
    private async Task<long> SealFileAsync(Stream part, SubmissionSealer sealer, byte[] first, int firstRead, long bytes, CancellationToken ct)
    {
        byte[] current = first, next = new byte[ChunkBytes];
        var read = firstRead;
        try
        {
            while (read > 0)
            {
                bytes += read;
                if (bytes > options.MaxSubmissionBytes) throw UploadRefused.TooLarge(options.MaxSubmissionBytes);
                var pending = Parse(part.ReadAsync(next.AsMemory(0, ChunkBytes)));
                try
                {
                    await sealer.WriteAsync(current.AsMemory(0, read), ct);
                }
                catch
                {
                    // The write's failure is the one that matters; the read's, if any, is observed and dropped.
                    _ = pending.AsTask().ContinueWith(static t => _ = t.Exception, TaskContinuationOptions.OnlyOnFaulted);
                    throw;
                }
                read = await pending;
                (current, next) = (next, current);
            }
            return bytes;
        }
        finally
        {
            // The chunk this method made (the caller clears its own): one of the two, whichever way they were swapped.
            CryptographicOperations.ZeroMemory(current);
            CryptographicOperations.ZeroMemory(next);
        }
    }

    /// <summary>
    /// After a refusal page: whether the rest of the body is read, and thrown away, before the connection closes.
    /// Firefox, and so Tor Browser, shows no answer until it has sent the whole request: closed on a body still
    /// coming, it shows "The connection to the server was reset" instead of the page. Kestrel drains an unread body
    /// for 5 seconds only, which over Tor is a few megabytes. Only a body declared within the size limit is waited
    /// for: one over it would take the source longer to send than the answer is worth, so it is closed at once.
    /// </summary>
    public bool LetsTheClientFinish(HttpRequest request) =>
        request.Headers.ContentLength is { } length && length <= WebListeners.MaxRequestBodyBytes(options) && request.Headers.TransferEncoding.Count == 0;

    /// <summary>
    /// Reads the rest of a refused request's body into a scratch buffer, so that the browser gets to show the page
    /// already sent; a body that stalls past the idle timeout (or breaks off) ends it, as it would an upload.
    /// No upload place is held meanwhile.
    /// </summary>
    public async Task LetTheClientFinishAsync(HttpContext context)
    {
        await using var body = new IdleTimeoutStream(context.Request.Body, options.UploadIdleTimeout, options.MaxSubmissionBytes, context.RequestAborted);
        var scratch = new byte[16 * 1024];
        try
        {
            await context.Response.CompleteAsync();
            while (await body.ReadAsync(scratch) > 0) { }
        }
        catch (Exception e) when (e is UploadRefused or IOException or OperationCanceledException) { context.Abort(); } // the client is gone
        finally { CryptographicOperations.ZeroMemory(scratch); } // a source's bytes, though unwanted
    }

    /// <summary>The part's declared type as sent; none, or one longer than the format keeps (no browser sends such), is recorded as unknown.</summary>
    private static string ContentTypeOf(MultipartSection section) =>
        section.ContentType is { } type && Encoding.UTF8.GetByteCount(type) <= SubmissionSealer.MaxContentTypeBytes ? type : "application/octet-stream";

    private static string BoundaryOf(string? contentType)
    {
        if (!MediaTypeHeaderValue.TryParse(contentType, out var mediaType) ||
            !mediaType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            throw UploadRefused.NotMultipart();
        var boundary = HeaderUtilities.RemoveQuotes(mediaType.Boundary).ToString();
        // RFC 2046 §5.1.1 allows 1 to 70 characters, but w3m sends 82 when a form is sent again after Back:
        // a source is not refused for their browser's boundary. The cap only bounds what the reader scans for.
        if (boundary.Length is 0 or > MaxBoundaryLength || boundary.Any(char.IsControl)) throw UploadRefused.Malformed();
        return boundary;
    }

    /// <summary>The message is the one part kept in memory, so it is bounded before it is decoded.</summary>
    private async Task<string> ReadMessageAsync(Stream section, byte[] buffer)
    {
        // A UTF-16 char takes at most 3 bytes in UTF-8 (a surrogate pair: 4 bytes for 2 chars).
        var maxBytes = (int)Math.Min((long)options.MaxMessageChars * 3 + 4, Array.MaxLength);
        // One buffer of the largest size, cleared on every way out: a growing one would leave copies behind.
        var text = ArrayPool<byte>.Shared.Rent(maxBytes);
        var length = 0;
        string message;
        try
        {
            int read;
            while ((read = await Parse(section.ReadAsync(buffer.AsMemory(0, ChunkBytes)))) > 0)
            {
                if ((long)length + read > maxBytes) throw UploadRefused.MessageTooLong(options.MaxMessageChars);
                buffer.AsSpan(0, read).CopyTo(text.AsSpan(length));
                length += read;
            }
            message = Encoding.UTF8.GetString(text, 0, length);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(text.AsSpan(0, length));
            ArrayPool<byte>.Shared.Return(text);
        }
        // Browsers send line breaks as CRLF but count them as one character in maxlength.
        if (message.Length - CountCrLf(message) > options.MaxMessageChars) throw UploadRefused.MessageTooLong(options.MaxMessageChars);
        return message;
    }

    private static async Task DrainAsync(Stream section, byte[] buffer, int limit)
    {
        long total = 0;
        int read;
        while ((read = await Parse(section.ReadAsync(buffer.AsMemory(0, ChunkBytes)))) > 0)
            if ((total += read) > limit) throw UploadRefused.Malformed();
    }

    /// <summary>Multipart syntax errors are the client's: a 400, not a 500. (Called once per 64 KiB chunk: its state machine is reused.)</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<T> Parse<T>(ValueTask<T> read)
    {
        try { return await read; }
        catch (InvalidDataException) { throw UploadRefused.Malformed(); }
        // MultipartReader's "Unexpected end of Stream": the body ended inside the multipart structure.
        // (Failures of the connection itself already come out of IdleTimeoutStream as UploadRefused.)
        catch (IOException) { throw UploadRefused.Malformed(); }
    }

    private static int CountCrLf(string s)
    {
        var n = 0;
        for (var i = s.IndexOf("\r\n", StringComparison.Ordinal); i >= 0; i = s.IndexOf("\r\n", i + 2, StringComparison.Ordinal)) n++;
        return n;
    }

    /// <summary>
    /// Once, when the disk fills: journald stamps every line, so one per refused upload would record when each source
    /// tried. Said again only after a commit has found the disk no longer low (StatusFileWriter logs that moment).
    /// </summary>
    internal void LogDiskFull(Exception e)
    {
        if (Interlocked.Exchange(ref _diskFull, 1) == 0)
            log.LogError("Disk full: uploads are refused, and nothing of them kept, until space is freed (logged once, not per upload): {Error}", e.Message);
    }

    private void NoteDiskSpace()
    {
        // Silent, after a commit: a line here would date a submission.
        if (Volatile.Read(ref _diskFull) == 1 && new DriveInfo(options.DataDir).AvailableFreeSpace >= Status.StatusHealth.LowDiskBytes)
            Volatile.Write(ref _diskFull, 0);
    }

    /// <summary>
    /// A part's Content-Disposition. Filenames are taken as sent, however odd (the opener neutralises
    /// them); when a strict parse fails on one, a lenient one still finds it, so a source is never
    /// refused for a filename. A part is a file whenever it carries a filename parameter in any form, or
    /// comes from the form's file input: one whose name cannot be decoded keeps the parameter's raw text,
    /// one without any name gets none (the opener names it), and no file is ever dropped for its name.
    /// </summary>
    private sealed partial record FormPart(string Name, string? FileName)
    {
        public static FormPart? Parse(string? header)
        {
            if (string.IsNullOrEmpty(header)) return null;
            string name;
            string? fileName = null;
            if (ContentDispositionHeaderValue.TryParse(header, out var cd) &&
                cd.DispositionType.Equals("form-data", StringComparison.OrdinalIgnoreCase) && cd.Name.HasValue)
            {
                name = HeaderUtilities.RemoveQuotes(cd.Name).ToString();
                if (cd.FileNameStar.HasValue && cd.FileNameStar.Length > 0) fileName = cd.FileNameStar.ToString();
                else if (cd.FileName.HasValue) fileName = HeaderUtilities.RemoveQuotes(cd.FileName).ToString();
            }
            else
            {
                if (!header.TrimStart().StartsWith("form-data", StringComparison.OrdinalIgnoreCase)) return null;
                var nameMatch = NameRegex().Match(header);
                if (!nameMatch.Success) return null;
                name = nameMatch.Groups[1].Value;
                if (FileNameRegex().Match(header) is { Success: true } quoted) fileName = quoted.Groups[1].Value;
            }
            // A filename parameter neither parse could decode (an unknown charset, no quotes around spaces...).
            if (fileName is null && RawFileNameRegex().Match(header) is { Success: true } raw)
                fileName = HeaderUtilities.RemoveQuotes(raw.Groups[1].Value.Trim()).ToString();
            if (fileName is null && name == FilesField) fileName = "";
            return new FormPart(name, fileName);
        }

        [GeneratedRegex("""(?:^|;)\s*name="(.*?)"\s*(?=;\s*[\w*-]+=|$)""", RegexOptions.IgnoreCase | RegexOptions.Singleline)]
        private static partial Regex NameRegex();

        // Up to the quote that ends the parameter: a filename may itself hold quotes or semicolons.
        [GeneratedRegex("""(?:^|;)\s*filename="(.*?)"\s*(?=;\s*[\w*-]+=|$)""", RegexOptions.IgnoreCase | RegexOptions.Singleline)]
        private static partial Regex FileNameRegex();

        // filename or filename*, quoted or not: everything up to the next parameter or the end.
        [GeneratedRegex("""(?:^|;)\s*filename\*?\s*=(.*?)(?=;\s*[\w*-]+=|$)""", RegexOptions.IgnoreCase | RegexOptions.Singleline)]
        private static partial Regex RawFileNameRegex();
    }
}
