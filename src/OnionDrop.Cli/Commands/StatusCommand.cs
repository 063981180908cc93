using System.CommandLine;

namespace OnionDrop.Cli.Commands;

public static class StatusCommand
{
    public static Command Create()
    {
        var command = new Command("status", "(not implemented yet)");
        command.SetAction(_ => { Console.Error.WriteLine("oniondrop status: not implemented yet"); return 70; });
        return command;
    }
}
