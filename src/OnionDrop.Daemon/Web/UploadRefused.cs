namespace OnionDrop.Daemon.Web;

/// <summary>A size argument of a page's text, written in the page's language.</summary>
public sealed record ByteSize(long Bytes);

/// <summary>A count argument of a page's text: its key then has a singular form, "KeyOne" (PageLanguage.FormatCount).</summary>
public sealed record Quantity(long N);

/// <summary>
/// An upload refused for the client's side: it shows a friendly page with <see cref="Status"/>, or, when
/// nobody is left to read one (connection cut, upload stalled), closes the connection. Either way the
/// submission's writer is disposed uncommitted, so nothing of it stays on disk.
/// </summary>
public sealed class UploadRefused : Exception
{
    public int Status { get; }
    public string TitleKey { get; }
    public string TextKey { get; }
    public object[] Args { get; }
    public bool CloseConnection { get; }

    /// <summary>Whether the source may have lost typed work (the page then says nothing was kept); not for an empty form.</summary>
    public bool SomethingWasSent { get; private init; } = true;

    private UploadRefused(int status, string titleKey, string textKey, bool close, params object[] args)
        : base($"upload refused: {status} {titleKey}") =>
        (Status, TitleKey, TextKey, CloseConnection, Args) = (status, titleKey, textKey, close, args);

    public static UploadRefused Malformed() => new(400, "ErrBadRequestTitle", "ErrBadRequestText", false);
    public static UploadRefused LengthRequired() => new(411, "ErrBadRequestTitle", "ErrBadRequestText", false);
    public static UploadRefused NotMultipart() => new(415, "ErrContentTypeTitle", "ErrContentTypeText", false);
    /// <param name="messages">whether the form has a message box (MaxMessageChars above 0)</param>
    public static UploadRefused Empty(bool messages) =>
        new(400, "ErrNothingTitle", messages ? "ErrNothingText" : "ErrNothingTextFilesOnly", false) { SomethingWasSent = false };
    public static UploadRefused TooLarge(long limitBytes) => new(413, "ErrTooLargeTitle", "ErrTooLargeText", false, new ByteSize(limitBytes));
    public static UploadRefused TooManyFiles(int limit) => new(413, "ErrTooManyFilesTitle", "ErrTooManyFilesText", false, new Quantity(limit));
    public static UploadRefused MessageTooLong(int limit) => new(413, "ErrMessageTooLongTitle", "ErrMessageTooLongText", false, new Quantity(limit));

    public static UploadRefused Busy() => new(503, "ErrBusyTitle", "ErrBusyText", false);

    /// <summary>The connection broke, or the upload stopped moving: nobody to answer.</summary>
    public static UploadRefused Gone() => new(400, "ErrBadRequestTitle", "ErrBadRequestText", true);
}
